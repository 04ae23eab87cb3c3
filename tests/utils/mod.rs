//! Test helpers shared by the integration tests (`mod utils;`).
#![allow(dead_code)]

pub mod browser;
pub mod cli;
pub mod config;
pub mod echo;
pub mod failover;
pub mod gateway;
pub mod http;
pub mod link;
pub mod ports;
pub mod raw;
pub mod redis;
pub mod served;
pub mod servers;
pub mod signin;
pub mod tls;
