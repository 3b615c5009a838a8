//! The builtin programs every chain starts with: authenticated transfer (native token), token,
//! and clock. Each reproduces its LEZ counterpart's account shapes and checks; errors carry
//! stable codes in a range of their own (transfer 2xxx, token 3xxx, clock 4xxx).

pub mod clock;
pub mod token;
pub mod transfer;

/// Declares a numbered program error enum with `code`, `name`, `description`, `from_code` and a
/// conversion into [`paystreams_lez_core::ProgramError`] with a detail message.
macro_rules! program_errors {
    ($(#[$meta:meta])* $vis:vis enum $ty:ident { $( $(#[doc = $doc:literal])* $name:ident = $code:literal, )* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
        #[repr(u32)]
        $vis enum $ty {
            $( $(#[doc = $doc])* $name = $code, )*
        }

        impl $ty {
            /// All errors, in code order.
            pub const ALL: &'static [Self] = &[$(Self::$name,)*];

            /// The stable numeric code.
            #[must_use]
            pub const fn code(self) -> u32 {
                self as u32
            }

            /// The variant name.
            #[must_use]
            pub const fn name(self) -> &'static str {
                match self { $( Self::$name => stringify!($name), )* }
            }

            /// The one-line description (the variant's doc comment).
            #[must_use]
            pub fn description(self) -> &'static str {
                match self { $( Self::$name => concat!($($doc),*).trim(), )* }
            }

            /// Looks an error up by code.
            #[must_use]
            pub fn from_code(code: u32) -> Option<Self> {
                Self::ALL.iter().copied().find(|e| e.code() == code)
            }

            /// The program failure with a detail about this occurrence.
            #[must_use]
            pub fn with(self, detail: impl std::fmt::Display) -> paystreams_lez_core::ProgramError {
                paystreams_lez_core::ProgramError::new(self.code(), self.name(), format!("{} ({detail})", self.description()))
            }
        }

        impl From<$ty> for paystreams_lez_core::ProgramError {
            fn from(error: $ty) -> Self {
                Self::new(error.code(), error.name(), error.description())
            }
        }
    };
}
pub(crate) use program_errors;
