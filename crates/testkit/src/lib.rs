//! Test support shared by the workspace's test suites. Never a dependency of production code.
//!
//! - [`probe`]: which outside programs this machine has (PostgreSQL server binaries, Chromium
//!   with ChromeDriver, valgrind). Test crates include the same file from their `build.rs`, so a
//!   test that needs a missing program is compiled as `#[ignore]` with a reason and shows up as
//!   *ignored* by name in `cargo test`'s summary instead of passing silently.

pub mod probe;
