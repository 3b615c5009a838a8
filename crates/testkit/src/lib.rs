//! Test support shared by the workspace's test suites. Never a dependency of production code.
//!
//! - [`probe`]: which outside programs this machine has (PostgreSQL server binaries, Chromium
//!   with ChromeDriver, valgrind). Test crates include the same file from their `build.rs`, so a
//!   test that needs a missing program is compiled as `#[ignore]` with a reason and shows up as
//!   *ignored* by name in `cargo test`'s summary instead of passing silently.
//! - [`postgres`]: a fresh database per test on the server `PAYSTREAMS_TEST_POSTGRES` names or,
//!   without it, on a throw-away cluster the test process starts from Debian's server binaries.
//! - [`rng`]: the one seeded random source of tests and benchmarks (seed printed, replayable).
//! - [`cpu`]: the benchmark process's own CPU time, for CPU per operation.

pub mod cpu;
pub mod postgres;
pub mod probe;
pub mod rng;
