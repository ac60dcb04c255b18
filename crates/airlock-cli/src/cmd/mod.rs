//! One module per command family.

pub mod audit;
pub mod deid;
pub mod demo;
pub mod gate;
pub mod generate;
pub mod home;
pub mod serve;
