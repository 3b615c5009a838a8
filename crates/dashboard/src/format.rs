//! Text for people: amounts with digit grouping, chain times in UTC, durations, short ids. One
//! implementation, shared with the CLI: `paystreams_client::display`.

pub use paystreams_client::display::{amount, duration, group_digits, short_id, time, time_of_day};
