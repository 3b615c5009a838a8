#[path = "../../crates/testkit/src/probe.rs"]
mod probe;

fn main() {
    probe::emit_cfgs();
}
