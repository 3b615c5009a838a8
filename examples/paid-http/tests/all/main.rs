//! The paid HTTP example through `paystream gate`, over real sockets, on a real embedded node.

mod gate;
mod postgres;
