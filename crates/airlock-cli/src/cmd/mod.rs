//! One module per command family.

pub mod audit;
pub mod deid;
pub mod demo;
pub mod demo_dp;
pub mod demo_models;
pub mod demo_monitor;
pub mod dp;
pub mod gate;
pub mod generate;
pub mod home;
pub mod incidents;
pub mod models;
pub mod monitor;
pub mod serve;
pub mod synth;
pub mod views;
