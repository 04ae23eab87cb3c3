//! What one header insert costs in pingora's request header (docs/performance.md, "What
//! one added header costs"). Clones a small request header N times and, with `insert`,
//! inserts the six headers a gateway adds (as ssogate's `upstream_request_filter` does),
//! then writes it out as HTTP/1. Run both under callgrind and divide the difference:
//!
//!   cargo build --release --example header_cost
//!   for m in clone insert; do valgrind --tool=callgrind --callgrind-out-file=/tmp/h.$m \
//!     target/release/examples/header_cost $m 20000; done
//!
//! (instructions per inserted header = (insert − clone) / 20000 / 6). The same allocator
//! as the ssogate binary (mimalloc).

use pingora::http::RequestHeader;
use std::hint::black_box;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NAMES: [&str; 6] = [
    "X-Remote-User",
    "X-Remote-Email",
    "X-Remote-Groups",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Request-Id",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let insert = match args.next().as_deref() {
        Some("clone") => false,
        Some("insert") => true,
        _ => return Err("usage: header_cost clone|insert [N]".into()),
    };
    let n: usize = args.next().map_or(Ok(100_000), |s| s.parse())?;
    let mut request = RequestHeader::build("GET", b"/app/page", None)?;
    request.append_header("Host", "127.0.0.1:8080")?;
    request.append_header("Cookie", "ssogate=0123456789abcdef0123456789abcdef")?;
    let names: Vec<bytes::Bytes> = NAMES
        .iter()
        .map(|s| bytes::Bytes::from_static(s.as_bytes()))
        .collect();
    let value = http::HeaderValue::from_static("a-value-of-moderate-length-0123456789");
    let mut wire = bytes::BytesMut::with_capacity(4096);
    for _ in 0..n {
        let mut r = request.clone();
        if insert {
            for name in &names {
                r.insert_header(name.clone(), value.clone())?;
            }
        }
        wire.clear();
        r.header_to_h1_wire(&mut wire);
        black_box(&wire);
        black_box(r);
    }
    Ok(())
}
