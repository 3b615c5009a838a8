//! LEZ-shaped runtime (being written).
