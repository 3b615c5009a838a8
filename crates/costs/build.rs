//! Sets `has_chromium`/`has_valgrind` (and `has_postgres`) when this machine has the program a
//! test needs, so such a test is compiled ignored, and listed as ignored, where it cannot run.

#[path = "../testkit/src/probe.rs"]
mod probe;

fn main() {
    probe::emit_cfgs();
}
