//! LEZ's builtin program ids, per supported LEZ release.
//!
//! On LEZ a program id is the RISC Zero image id of the program's guest ELF. LEZ commits the
//! built ELFs of its builtins to its repository (`artifacts/lez/programs/<name>.bin`, and the
//! privacy circuit at `artifacts/lee/privacy_preserving_circuit/privacy_preserving_circuit.bin`)
//! and derives each id at build time with `risc0_binfmt::compute_image_id` over those bytes. The
//! table below was computed the same way: `risc0-binfmt` 3.0.2 (the version LEZ's `build_utils`
//! pins) `compute_image_id` over each ELF as committed at the release commit. Every entry keeps
//! the ELF's path and SHA-256, so anyone can recompute it:
//!
//! ```text
//! git -C logos-execution-zone show <commit>:<elf_path> > prog.bin   # sha256sum = elf_sha256
//! compute_image_id(&std::fs::read("prog.bin")?)                     # = id (words, LE hex)
//! ```
//!
//! | release | commit |
//! |---|---|
//! | v0.2.0 | `a58fbce2ff48c58b7bb5001b1a27e64b9596ee3a` |
//! | v0.2.1 | `15144ddb8437f48cdce32908e122dbb7eea68399` |
//! | v0.2.2 | `d6e4ae694e7419f5906b340c232704466a1917b7` |
//! | v0.2.3 | `43b66b15928ddd30a1ed71a176139c98ac6c2ca6` |
//! | v0.2.4 | `47eba256479f6f785acbd138834340703cd03401` |
//!
//! v0.2.2, v0.2.3 and v0.2.4 commit byte-identical ELFs, so they share ids; v0.2.0 and v0.2.1
//! each differ from every other release. The live testnet runs the v0.2.2–v0.2.4 ids, so
//! [`LezRelease::DEFAULT`] is v0.2.4. The tests check the table against pins recorded
//! independently of this computation (the reference program's authenticated-transfer ids for
//! v0.2.0 and v0.2.4, the testnet's clock id).
//!
//! Which builtins run under these ids here: authenticated transfer and clock implement LEZ's
//! instructions, so they take LEZ's ids ([`BuiltinIds`]). This implementation's token program
//! does not implement LEZ's token instructions, so it keeps an id of its own
//! ([`crate::token::token_program_id`]); the payment-streams program keeps its own id too (it is
//! not the reference's ELF).

use std::{fmt, str::FromStr};

use borsh::{BorshDeserialize, BorshSerialize};

use crate::{
    ProgramId,
    clock::CLOCK_ACCOUNT_IDS,
    lee_transaction::{LeeMessage, LeePublicTransaction, LeeTransaction},
};

/// One builtin program of a release: where its ELF is, the ELF's SHA-256 and its image id.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BuiltinPin {
    /// LEZ's name for the program (the ELF's file stem).
    pub program: &'static str,
    /// Path of the ELF in LEZ's repository at the release commit.
    pub elf_path: &'static str,
    /// SHA-256 of the ELF, hex.
    pub elf_sha256: &'static str,
    /// `compute_image_id` of the ELF.
    pub id: ProgramId,
}

const fn pin(program: &'static str, elf_path: &'static str, elf_sha256: &'static str, words: [u32; 8]) -> BuiltinPin {
    BuiltinPin { program, elf_path, elf_sha256, id: ProgramId(words) }
}

const PINS_V0_2_0: [BuiltinPin; 11] = [
    pin(
        "amm",
        "artifacts/lez/programs/amm.bin",
        "2d275366687baf11eea27942879242ff8889d14b2246dac000a1f0b6a4e5f610",
        [
            3_938_501_840,
            2_324_858_003,
            1_666_889_367,
            375_716_348,
            780_188_473,
            2_541_850_958,
            134_690_371,
            504_369_919,
        ],
    ),
    pin(
        "associated_token_account",
        "artifacts/lez/programs/associated_token_account.bin",
        "8ca29768706ae0450b06cd1423eb1f2d87c05cbfb4a5a968d07824da4bcdd2fc",
        [
            3_357_312_149,
            3_615_960_253,
            3_351_583_505,
            2_234_166_003,
            4_153_433_811,
            2_743_238_177,
            2_886_052_503,
            4_160_755_157,
        ],
    ),
    pin(
        "authenticated_transfer",
        "artifacts/lez/programs/authenticated_transfer.bin",
        "a54b6e7d08f664253d8df784c5d2559f79e19d67fd1719ecbd1c141dbd6ddbcf",
        [
            3_170_810_844,
            2_526_647_253,
            999_807_262,
            1_205_602_179,
            3_401_962_591,
            3_484_055_895,
            2_106_546_407,
            1_900_691_388,
        ],
    ),
    pin(
        "bridge",
        "artifacts/lez/programs/bridge.bin",
        "c28f556d1220a32ba02f9d6b6d7ede5b0101a55f6d0e9fb7917dacf067311dec",
        [
            4_055_902_857,
            3_504_899_920,
            3_002_912_689,
            171_582_257,
            1_364_142_713,
            2_858_044_526,
            2_885_477_314,
            3_931_248_408,
        ],
    ),
    pin(
        "clock",
        "artifacts/lez/programs/clock.bin",
        "0447f839e46f584e7125dbd3f67b7d1a0cba17d520247867fc5ef0f5a9eb7a5b",
        [
            979_979_912,
            3_730_255_152,
            96_781_338,
            501_898_186,
            3_738_241_015,
            2_113_460_497,
            2_222_463_973,
            1_670_293_850,
        ],
    ),
    pin(
        "faucet",
        "artifacts/lez/programs/faucet.bin",
        "452b3bd60bc399d63a2abc2fc2ce3cb33cb2c723be23588ca9d50f8ce6920f15",
        [
            3_202_488_003,
            2_265_373_137,
            3_565_181_875,
            2_136_920_928,
            3_140_485_604,
            4_047_263_442,
            237_953_438,
            138_790_662,
        ],
    ),
    pin(
        "pinata",
        "artifacts/lez/programs/pinata.bin",
        "59807047471e26af11847dcbfd9d87b4ca60cd56149b1cae31f9050944ed3a98",
        [
            2_376_463_974,
            3_277_439_378,
            1_302_675_137,
            2_326_148_894,
            3_540_995_969,
            3_074_751_928,
            386_292_947,
            4_166_403_244,
        ],
    ),
    pin(
        "pinata_token",
        "artifacts/lez/programs/pinata_token.bin",
        "b73a09f9c6b9422b54f8ec88c2edd68d7ca363688dd7ffb816a975bbbb81ead7",
        [
            3_047_379_894,
            2_689_959_859,
            2_697_186_916,
            3_822_692_513,
            1_016_051_881,
            1_902_712_556,
            247_364_918,
            1_611_733_680,
        ],
    ),
    pin(
        "privacy_preserving_circuit",
        "artifacts/lee/privacy_preserving_circuit/privacy_preserving_circuit.bin",
        "4c3665913d08a0ec043ee2d476750c59792df8d7c4feacedbd36cac58ffae9c3",
        [
            1_473_414_827,
            2_830_688_453,
            889_928_182,
            3_392_605_264,
            2_857_892_388,
            2_747_074_170,
            4_080_825_648,
            1_235_408_490,
        ],
    ),
    pin(
        "token",
        "artifacts/lez/programs/token.bin",
        "0f3671d6d0f77fb5d25d3d3dc5015b748b8a6e0687ac8b457f096f87408ef6fd",
        [
            2_282_739_141,
            348_907_455,
            1_046_946_228,
            3_735_699_860,
            585_462_133,
            3_426_087_150,
            772_528_164,
            2_090_518_099,
        ],
    ),
    pin(
        "vault",
        "artifacts/lez/programs/vault.bin",
        "7ff0b662649ac47cd3135294e13afd0cf0b5f97dc923bfe78b5d92ff13e7f5a4",
        [
            1_168_813_120,
            241_877_831,
            3_407_559_972,
            2_131_462_206,
            1_965_161_891,
            2_000_235_008,
            2_574_408_698,
            1_333_126_597,
        ],
    ),
];

const PINS_V0_2_1: [BuiltinPin; 17] = [
    pin(
        "amm",
        "artifacts/lez/programs/amm.bin",
        "737aa12b53b9af508795d93ba3ddec248f59c2c728558a2249b3a9febe31b629",
        [
            2_179_260_457,
            2_748_461_510,
            43_677_620,
            1_471_230_545,
            2_515_319_562,
            641_413_985,
            1_576_052_519,
            354_470_983,
        ],
    ),
    pin(
        "associated_token_account",
        "artifacts/lez/programs/associated_token_account.bin",
        "ea5683a4e14a80c273839ff62e5714794e9e3046233cdfaf3132252c693f1d95",
        [
            2_589_044_957,
            2_630_505_687,
            453_072,
            3_460_938_196,
            2_267_975_536,
            1_599_580_652,
            994_064_740,
            2_475_487_077,
        ],
    ),
    pin(
        "authenticated_transfer",
        "artifacts/lez/programs/authenticated_transfer.bin",
        "93fe6a2751e611d86c9fcd9937d6af4a8c316bba93b4a84ffb74d9941cf400c5",
        [
            477_196_038,
            3_380_722_759,
            697_686_471,
            638_474_828,
            2_513_834_161,
            571_091_091,
            2_805_165_995,
            3_826_860_356,
        ],
    ),
    pin(
        "bridge",
        "artifacts/lez/programs/bridge.bin",
        "71a7b47f1ef2162cfd798de3a34f7fc5de1228da6e42071cb234c2b6eab64aaa",
        [
            306_290_637,
            3_035_965_084,
            458_012_515,
            1_245_368_413,
            2_919_135_147,
            1_823_298_118,
            4_105_097_624,
            3_444_619_116,
        ],
    ),
    pin(
        "bridge_lock",
        "artifacts/lez/programs/bridge_lock.bin",
        "e3777b4f7b641a3f5ef50c1543933c3126eb6c1d226728a8e6fe7cbe0b44f3e7",
        [
            2_515_223_811,
            2_220_734_630,
            1_950_402_429,
            1_251_076_407,
            4_115_344_398,
            3_205_112_677,
            520_560_335,
            3_505_822_564,
        ],
    ),
    pin(
        "clock",
        "artifacts/lez/programs/clock.bin",
        "cb2714a69f11d5e8e065fdfbd395bc782f590dc18dd65f5506d3983106705131",
        [
            1_221_544_405,
            2_970_833_712,
            3_835_820_276,
            3_258_527_817,
            2_881_569_110,
            3_644_249_252,
            1_257_959_553,
            3_874_668_902,
        ],
    ),
    pin(
        "cross_zone_inbox",
        "artifacts/lez/programs/cross_zone_inbox.bin",
        "c960b7f6dd31892eafa8890e19f1286b65228b070e4053954ac86de72accc617",
        [
            1_365_361_345,
            2_916_554_835,
            359_330_110,
            4_128_331_913,
            2_668_429_629,
            2_262_086_060,
            212_294_324,
            1_480_217_909,
        ],
    ),
    pin(
        "cross_zone_outbox",
        "artifacts/lez/programs/cross_zone_outbox.bin",
        "348e104abddca01a507a88b5529f344aedf79d1f0a422d492486dc6161099755",
        [
            1_117_662_489,
            1_960_683_768,
            3_575_213_660,
            3_844_241_163,
            1_563_478_291,
            3_960_446_724,
            877_087_924,
            1_899_860_837,
        ],
    ),
    pin(
        "faucet",
        "artifacts/lez/programs/faucet.bin",
        "9d8f08d7575342bf87de391b555c543b5b2cf8bc9fd810b3a0550b6775490803",
        [
            2_416_812_217,
            221_490_449,
            3_515_972_506,
            2_421_769_496,
            2_171_842_273,
            2_436_273_650,
            2_119_958_595,
            967_438_430,
        ],
    ),
    pin(
        "pinata",
        "artifacts/lez/programs/pinata.bin",
        "caae9c43339aaf08536a4e73a08437ba577a9d6d9a3e4ac91d0e43df623b41ae",
        [
            3_453_103_020,
            773_920_242,
            3_232_156_283,
            2_742_773_101,
            3_355_904_837,
            1_401_237_990,
            2_577_451_181,
            1_270_244_098,
        ],
    ),
    pin(
        "pinata_token",
        "artifacts/lez/programs/pinata_token.bin",
        "3919951c3de1d34a051b4e5ba5a972a8f6a2b4c660059db9e16f759e2a55c22c",
        [
            641_936_696,
            3_016_334_228,
            578_473_439,
            937_294_206,
            2_804_073_112,
            861_279_976,
            1_168_564_737,
            2_790_305_366,
        ],
    ),
    pin(
        "ping_receiver",
        "artifacts/lez/programs/ping_receiver.bin",
        "dbd93ea3c52aa2f913b0cb62534b19823e5c44978ea5ff1d6faebc0ff1ff6f75",
        [
            2_558_993_378,
            1_905_783_691,
            4_246_568_997,
            2_025_807_218,
            2_239_058_288,
            2_355_229_781,
            2_653_982_748,
            4_206_418_903,
        ],
    ),
    pin(
        "ping_sender",
        "artifacts/lez/programs/ping_sender.bin",
        "c8528609e98a8b266d86285343cc28cbe17b94160c8597e0de19583257a1104a",
        [
            2_372_285_438,
            1_018_096_599,
            836_566_115,
            606_765_466,
            3_193_042_792,
            2_563_620_763,
            1_674_253_214,
            173_830_628,
        ],
    ),
    pin(
        "privacy_preserving_circuit",
        "artifacts/lee/privacy_preserving_circuit/privacy_preserving_circuit.bin",
        "bed0b001d6f146fbb7c55479a2cfc1d94bec0ca6952e4c7b275477097298e78e",
        [
            1_928_761_178,
            3_831_861_383,
            520_240_098,
            1_306_524_314,
            3_883_117_684,
            3_153_904_081,
            3_169_003_997,
            1_608_036_164,
        ],
    ),
    pin(
        "token",
        "artifacts/lez/programs/token.bin",
        "9cf1f9216767ce2068e9db1a628daaf4998bb095896678eb0bccd680f437602f",
        [
            3_202_377_277,
            3_910_122_468,
            65_189_160,
            2_783_682_619,
            1_037_307_283,
            3_957_686_359,
            804_879_507,
            4_246_016_423,
        ],
    ),
    pin(
        "vault",
        "artifacts/lez/programs/vault.bin",
        "f80d027388deceebf59a8a6e04c0e4e155d4a7e3bdd240f029ae13556b494766",
        [
            1_670_654_127,
            1_328_560_804,
            4_088_946_018,
            2_971_149_334,
            3_437_811_946,
            2_952_746_884,
            1_623_793_770,
            1_257_958_570,
        ],
    ),
    pin(
        "wrapped_token",
        "artifacts/lez/programs/wrapped_token.bin",
        "ff427822effca7d8c56f89d8ef5bf8babfa8eb8438a441ef262b7155a986087e",
        [
            4_018_984_839,
            686_395_620,
            1_730_663_778,
            1_901_598_016,
            683_405_860,
            1_604_899_777,
            3_433_898_483,
            2_523_478_009,
        ],
    ),
];

const PINS_V0_2_2_TO_V0_2_4: [BuiltinPin; 17] = [
    pin(
        "amm",
        "artifacts/lez/programs/amm.bin",
        "a9568133ca103fe26f93ec07fa1f1432e2bfe2b906786181c274156c91b13276",
        [
            1_765_802_831,
            3_731_187_220,
            2_062_982_807,
            1_520_762_763,
            307_650_957,
            4_265_115_253,
            384_461_553,
            795_532_917,
        ],
    ),
    pin(
        "associated_token_account",
        "artifacts/lez/programs/associated_token_account.bin",
        "06058539391d7949ddd37cd085b61b33a5a768296af5190975a6104644ac5e5a",
        [
            1_563_554_205,
            697_904_783,
            2_702_216_093,
            2_965_692_927,
            3_153_221_855,
            2_812_443_166,
            1_620_412_227,
            3_110_729_199,
        ],
    ),
    pin(
        "authenticated_transfer",
        "artifacts/lez/programs/authenticated_transfer.bin",
        "d0cfb36899c9100f089bbabae8b3ddf449a0bec0791c2955ba7fea1a976e5351",
        [
            583_309_054,
            2_344_528_779,
            3_806_558_405,
            2_890_696_795,
            2_257_354_672,
            3_978_764_116,
            2_273_929_063,
            1_518_858_078,
        ],
    ),
    pin(
        "bridge",
        "artifacts/lez/programs/bridge.bin",
        "92183a5d96b3c7bfa5a08e1e049681fcabab4269aa6c5d80ef0b5eed0a9969ce",
        [
            1_798_162_799,
            3_464_636_229,
            1_330_435_915,
            1_501_542_355,
            2_086_947_796,
            3_246_757_981,
            1_840_944_434,
            3_509_928_425,
        ],
    ),
    pin(
        "bridge_lock",
        "artifacts/lez/programs/bridge_lock.bin",
        "c540aafd8d147ec2e20f94c1768d0a9e184f0001043abff7654b92abc61f06e3",
        [
            761_851_076,
            2_397_608_801,
            1_304_281_713,
            3_752_517_947,
            410_351_086,
            1_436_246_090,
            814_304_712,
            1_425_351_255,
        ],
    ),
    pin(
        "clock",
        "artifacts/lez/programs/clock.bin",
        "de25823099621b66d9ecf84c18c23e4d262b2748c57d90fb232acf0d3337e101",
        [
            96_247_601,
            2_082_502_477,
            822_865_082,
            1_048_693_993,
            3_544_189_898,
            772_921_104,
            1_694_408_900,
            4_234_239_033,
        ],
    ),
    pin(
        "cross_zone_inbox",
        "artifacts/lez/programs/cross_zone_inbox.bin",
        "1b8dcae2ac5726408bdbeae48cefb20aacf4135ebfd18fb87d7985fde1b44724",
        [
            3_516_312_882,
            1_460_742_931,
            425_365_106,
            3_618_651_034,
            2_092_051_282,
            2_524_380_786,
            646_932_711,
            961_786_546,
        ],
    ),
    pin(
        "cross_zone_outbox",
        "artifacts/lez/programs/cross_zone_outbox.bin",
        "e129ecade6086dc276f5c26acef098a31319e57cdfa17b31312a4e28c3dc95f3",
        [
            1_213_673_449,
            1_106_072_378,
            4_272_238_591,
            219_304_318,
            832_157_203,
            3_977_422_938,
            2_424_532_406,
            2_976_487_793,
        ],
    ),
    pin(
        "faucet",
        "artifacts/lez/programs/faucet.bin",
        "df1bdd4161a460bc6d6ff626baed3066e1490e3767ca44c0d5e2af25ba62fe52",
        [
            6_485_027,
            251_295_563,
            4_008_825_391,
            3_918_511_208,
            1_492_408_969,
            3_445_871_362,
            1_134_011_984,
            1_363_408_632,
        ],
    ),
    pin(
        "pinata",
        "artifacts/lez/programs/pinata.bin",
        "aeba7d8fa195b29fcc828b37fef37cae81775d7ed4860b09b87ceb2e5c7f6840",
        [
            2_062_635_772,
            3_904_239_712,
            2_833_328_350,
            20_714_435,
            436_307_236,
            2_247_732_790,
            2_681_611_470,
            2_354_246_644,
        ],
    ),
    pin(
        "pinata_token",
        "artifacts/lez/programs/pinata_token.bin",
        "409300a5dd0d9b6e5d1b9d62a2f3fbdcc867c2899844720b31232238ea7a66de",
        [
            1_100_802_507,
            1_276_830_534,
            1_052_057_400,
            1_744_373_036,
            3_058_378_386,
            2_477_759_351,
            192_681_889,
            1_052_643_198,
        ],
    ),
    pin(
        "ping_receiver",
        "artifacts/lez/programs/ping_receiver.bin",
        "1f69c74e7d535b449f1a588e1adecf0c51de87bbd3e264a0713618523ccf878c",
        [
            3_055_495_164,
            3_754_523_502,
            2_688_275_047,
            1_572_368_139,
            935_637_698,
            173_138_964,
            1_853_259_000,
            1_733_587_698,
        ],
    ),
    pin(
        "ping_sender",
        "artifacts/lez/programs/ping_sender.bin",
        "c5ab7691d0d71e46bd29003a6b280e5e66f38e0c4a0d269f526dd08a2d9e9ee7",
        [
            2_039_750_507,
            3_480_916_317,
            4_008_883_294,
            4_031_964_989,
            1_138_104_425,
            1_972_697_320,
            2_156_321_785,
            910_848_594,
        ],
    ),
    pin(
        "privacy_preserving_circuit",
        "artifacts/lee/privacy_preserving_circuit/privacy_preserving_circuit.bin",
        "c0536fb095d2e8df3bf8b77401a566574ac31ffe6053598ae3b8f5918fc4585e",
        [
            1_334_328_888,
            3_910_590_567,
            1_244_219_104,
            3_671_232_111,
            3_138_827_701,
            405_554_639,
            4_064_616_947,
            1_864_368_340,
        ],
    ),
    pin(
        "token",
        "artifacts/lez/programs/token.bin",
        "fb19cf52629836e5692cba4aa040ea1211c3053b77acc16e00ba1e3619535ff6",
        [
            1_047_643_340,
            4_291_649_067,
            2_093_396_023,
            4_016_657_193,
            3_904_308_476,
            481_382_041,
            2_987_082_047,
            2_603_530_278,
        ],
    ),
    pin(
        "vault",
        "artifacts/lez/programs/vault.bin",
        "0829cb5f34f030315d8c4babb27b23bef6d89412ba7ddee69a5df3ed9d5146ee",
        [576_165_744, 3_993_764_202, 163_362_149, 1_615_442_611, 776_477_111, 319_518_336, 138_645_106, 1_443_702_277],
    ),
    pin(
        "wrapped_token",
        "artifacts/lez/programs/wrapped_token.bin",
        "618d899b8f744b9c384396c38f1c4bb39022548b409b8024193b8265eb58b571",
        [
            3_443_318_621,
            3_303_916_673,
            4_069_536_071,
            2_232_832_912,
            3_431_047_957,
            1_967_217_051,
            1_568_720_233,
            2_219_553_481,
        ],
    ),
];

/// A LEZ release whose builtin program ids this implementation knows.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, BorshSerialize, BorshDeserialize)]
#[borsh(use_discriminant = true)]
#[repr(u8)]
pub enum LezRelease {
    V0_2_0 = 0,
    V0_2_1 = 1,
    V0_2_2 = 2,
    V0_2_3 = 3,
    V0_2_4 = 4,
}

impl LezRelease {
    /// Every supported release, oldest first.
    pub const ALL: [Self; 5] = [Self::V0_2_0, Self::V0_2_1, Self::V0_2_2, Self::V0_2_3, Self::V0_2_4];

    /// The release the live LEZ testnet runs (v0.2.2–v0.2.4 share ids; v0.2.4 is the newest).
    pub const DEFAULT: Self = Self::V0_2_4;

    /// `v0.2.4` and so on: the text `--lez-release` takes.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::V0_2_0 => "v0.2.0",
            Self::V0_2_1 => "v0.2.1",
            Self::V0_2_2 => "v0.2.2",
            Self::V0_2_3 => "v0.2.3",
            Self::V0_2_4 => "v0.2.4",
        }
    }

    /// The release's commit in LEZ's repository (`logos-blockchain/logos-execution-zone`).
    #[must_use]
    pub const fn commit(self) -> &'static str {
        match self {
            Self::V0_2_0 => "a58fbce2ff48c58b7bb5001b1a27e64b9596ee3a",
            Self::V0_2_1 => "15144ddb8437f48cdce32908e122dbb7eea68399",
            Self::V0_2_2 => "d6e4ae694e7419f5906b340c232704466a1917b7",
            Self::V0_2_3 => "43b66b15928ddd30a1ed71a176139c98ac6c2ca6",
            Self::V0_2_4 => "47eba256479f6f785acbd138834340703cd03401",
        }
    }

    /// Every builtin of the release, sorted by name.
    #[must_use]
    pub const fn pins(self) -> &'static [BuiltinPin] {
        match self {
            Self::V0_2_0 => &PINS_V0_2_0,
            Self::V0_2_1 => &PINS_V0_2_1,
            Self::V0_2_2 | Self::V0_2_3 | Self::V0_2_4 => &PINS_V0_2_2_TO_V0_2_4,
        }
    }

    /// The id of one of the release's builtins, by LEZ's name.
    #[must_use]
    pub fn program_id(self, program: &str) -> Option<ProgramId> {
        self.pins().iter().find(|pin| pin.program == program).map(|pin| pin.id)
    }

    /// LEZ's authenticated-transfer program id in this release (every release has one).
    #[must_use]
    pub fn authenticated_transfer_id(self) -> ProgramId {
        self.program_id("authenticated_transfer").unwrap_or(ProgramId::DEFAULT)
    }

    /// LEZ's clock program id in this release (every release has one).
    #[must_use]
    pub fn clock_id(self) -> ProgramId {
        self.program_id("clock").unwrap_or(ProgramId::DEFAULT)
    }

    /// The ids the builtins of this implementation run under for this release.
    #[must_use]
    pub fn builtin_ids(self) -> BuiltinIds {
        BuiltinIds {
            authenticated_transfer: self.authenticated_transfer_id(),
            clock: self.clock_id(),
            token: crate::token::token_program_id(),
        }
    }

    /// The names `--lez-release` accepts, comma-separated.
    #[must_use]
    pub fn choices() -> String {
        Self::ALL.map(Self::name).join(", ")
    }
}

impl Default for LezRelease {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for LezRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A release name that is not supported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown LEZ release {given:?}; supported: {choices}", choices = LezRelease::choices())]
pub struct UnknownRelease {
    pub given: String,
}

impl FromStr for LezRelease {
    type Err = UnknownRelease;

    /// `v0.2.4` or `0.2.4`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        let with_v = if trimmed.starts_with('v') { trimmed.to_owned() } else { format!("v{trimmed}") };
        Self::ALL.into_iter().find(|r| r.name() == with_v).ok_or_else(|| UnknownRelease { given: s.to_owned() })
    }
}

/// The ids this implementation's builtins run under.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BuiltinIds {
    /// LEZ's authenticated-transfer program (the release's id).
    pub authenticated_transfer: ProgramId,
    /// LEZ's clock program (the release's id).
    pub clock: ProgramId,
    /// This implementation's token program (its own id in every release).
    pub token: ProgramId,
}

impl Default for BuiltinIds {
    fn default() -> Self {
        LezRelease::DEFAULT.builtin_ids()
    }
}

/// LEZ's `clock_invocation`: the unsigned transaction a sequencer appends as the last transaction
/// of every block, calling the clock program on the three clock accounts with the block's
/// timestamp (Unix milliseconds) as its instruction.
#[must_use]
pub fn clock_invocation(clock_program_id: ProgramId, timestamp_ms: u64) -> LeeTransaction {
    let message = LeeMessage {
        program_id: clock_program_id,
        account_ids: CLOCK_ACCOUNT_IDS.to_vec(),
        nonces: vec![],
        instruction_data: crate::clock::clock_instruction(timestamp_ms),
    };
    LeeTransaction::Public(LeePublicTransaction::unsigned(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccountId, pda::PdaSeed};

    fn hex_id(release: LezRelease, program: &str) -> String {
        release.program_id(program).expect("known program").to_string()
    }

    /// Pins recorded independently of the image-id computation: the reference program's
    /// authenticated-transfer ids (its v0.2.0 program graph and its v0.2.4 operator stack on the
    /// live testnet), and the testnet clock accounts' `program_owner`.
    #[test]
    fn the_table_agrees_with_the_independent_pins() {
        assert_eq!(
            hex_id(LezRelease::V0_2_0, "authenticated_transfer"),
            "dcbbfebcd59399961ed9973b8307dc475fd4c5ca5779aacfe7588f7dbc3f4a71"
        );
        assert_eq!(
            hex_id(LezRelease::V0_2_4, "authenticated_transfer"),
            "fe96c4228babbe8bc578e3e25b884cacb07f8c86541f27ed676789875eef875a"
        );
        assert_eq!(
            hex_id(LezRelease::V0_2_4, "clock"),
            "319fbc054d77207cbaec0b31e9cc813eca0b40d310d7112ec4a0fe64395c61fc"
        );
        assert_eq!(
            hex_id(LezRelease::V0_2_0, "clock"),
            "884e693a302d57de1ac4c405ca5bea1df707d1de11d9f87de51b78845aa98e63"
        );
        // The v0.2.4 token, amm, pinata and privacy-circuit ids as the testnet's
        // `getProgramIds` reports them.
        assert_eq!(
            hex_id(LezRelease::V0_2_4, "token"),
            "ccc4713e2b5ecdff37b0c67c295369effc04b7e8994eb11c3f410bb226b82e9b"
        );
        assert_eq!(
            hex_id(LezRelease::V0_2_4, "amm"),
            "4f034069146665de979ef67a8bffa45a8d615612757e38fef16aea1675de6a2f"
        );
        assert_eq!(
            hex_id(LezRelease::V0_2_4, "privacy_preserving_circuit"),
            "383e884f67e016e9e046294a6f8ed2dab5b516bbcf452c18f32145f2d400206f"
        );
    }

    #[test]
    fn releases_share_ids_exactly_where_their_elfs_are_identical() {
        assert_eq!(LezRelease::V0_2_2.pins(), LezRelease::V0_2_3.pins());
        assert_eq!(LezRelease::V0_2_3.pins(), LezRelease::V0_2_4.pins());
        for (older, newer) in [(LezRelease::V0_2_0, LezRelease::V0_2_1), (LezRelease::V0_2_1, LezRelease::V0_2_2)] {
            for pin in older.pins() {
                let Some(next) = newer.pins().iter().find(|p| p.program == pin.program) else { continue };
                assert_ne!(pin.elf_sha256, next.elf_sha256, "{} differs between {older} and {newer}", pin.program);
                assert_ne!(pin.id, next.id, "{} differs between {older} and {newer}", pin.program);
            }
        }
        assert_eq!(LezRelease::V0_2_0.pins().len(), 11);
        assert_eq!(LezRelease::V0_2_1.pins().len(), 17);
        assert_eq!(LezRelease::V0_2_4.pins().len(), 17);
    }

    #[test]
    fn the_table_is_well_formed() {
        for release in LezRelease::ALL {
            let pins = release.pins();
            assert!(pins.windows(2).all(|w| w[0].program < w[1].program), "{release}: sorted, no duplicates");
            for pin in pins {
                assert_eq!(pin.elf_sha256.len(), 64);
                assert!(hex::decode(pin.elf_sha256).is_ok());
                assert!(pin.elf_path.ends_with(&format!("/{}.bin", pin.program)));
                assert_ne!(pin.id, ProgramId::DEFAULT);
            }
            let ids = release.builtin_ids();
            assert_eq!(Some(ids.authenticated_transfer), release.program_id("authenticated_transfer"));
            assert_eq!(Some(ids.clock), release.program_id("clock"));
            assert_eq!(ids.token, crate::token::token_program_id(), "our token keeps its own id");
            assert_ne!(Some(ids.token), release.program_id("token"));
        }
    }

    #[test]
    fn release_names_parse_and_unknown_ones_list_the_choices() {
        for release in LezRelease::ALL {
            assert_eq!(release.name().parse::<LezRelease>(), Ok(release));
        }
        assert_eq!("0.2.0".parse::<LezRelease>(), Ok(LezRelease::V0_2_0));
        let error = "v0.3.0".parse::<LezRelease>().expect_err("unknown");
        assert!(error.to_string().contains("v0.2.0, v0.2.1, v0.2.2, v0.2.3, v0.2.4"), "{error}");
        assert_eq!(LezRelease::default(), LezRelease::V0_2_4);
        assert_eq!(borsh::to_vec(&LezRelease::V0_2_4).expect("encodes"), vec![4]);
    }

    /// The genesis clock transaction built with the table's testnet clock id hashes as
    /// lez-facts §1.6 computes it (the other vectors: `tests/all/lee_transaction.rs`, built with
    /// [`clock_invocation`] too).
    #[test]
    fn the_genesis_clock_invocation_under_the_table_id_hashes_as_lez_computes_it() {
        let tx = clock_invocation(LezRelease::V0_2_4.builtin_ids().clock, 0);
        assert_eq!(hex::encode(tx.hash()), "98d54a5257ad1716872303f90726f80aaf564d208b68adabe6a37d1087d44847");
        assert_eq!(tx.to_bytes().len(), 153, "tag byte and the 152-byte public transaction");
    }

    /// Addresses derived from a builtin id follow the release: a PDA of the authenticated
    /// transfer program differs between v0.2.0 and v0.2.4 and is stable within v0.2.2–v0.2.4.
    #[test]
    fn derived_addresses_follow_the_release() {
        let seed = PdaSeed([9; 32]);
        let at = |release: LezRelease| AccountId::for_public_pda(&release.builtin_ids().authenticated_transfer, &seed);
        assert_ne!(at(LezRelease::V0_2_0), at(LezRelease::V0_2_4));
        assert_eq!(at(LezRelease::V0_2_2), at(LezRelease::V0_2_4));
    }
}
