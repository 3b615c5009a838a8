//! `paystream`: the paystreams command line.

/// `println!` for command output: a closed stdout (`paystream … | head -1`) ends the process
/// quietly with [`commands::output::EXIT_BROKEN_PIPE`] instead of panicking.
macro_rules! outln {
    () => {
        $crate::commands::output::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::commands::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for command output, with the same handling of a closed stdout as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::commands::output::write_stdout(format_args!($($arg)*))
    };
}

mod commands;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = commands::config::parse_command_line();
    commands::run(cli)
}
