//! Integration tests of the dashboard, in one binary: every page and fragment rendered against
//! an in-process node, and the dashboard in a real browser (run where Chromium and ChromeDriver
//! are installed, reported ignored elsewhere).

mod browser;
mod common;
mod history;
mod history_chain;
mod render;
mod user_view;
