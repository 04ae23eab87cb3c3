//! The public listener's HTTP/1 entry (`proxy::wire::RequestLineRewriter`), which escapes
//! `"`, `<`, `>`, `` ` `` (and `#` in the query) in each request line as it is read, before
//! pingora parses it: a streaming state machine over reads of any size.
//!
//! Input: two bytes choosing the inner stream's read size and the reader's buffer size,
//! then the bytes the client sends.
//!
//! Asserts: no panic; the bytes read through the rewriter are exactly what a plain
//! one-pass model of the rule gives (only the first request line changes, each of those
//! bytes becomes its escape, nothing else moves), whatever the read and buffer sizes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ssogate::proxy::wire::RequestLineRewriter;
use ssogate_fuzz::runtime;
use tokio::io::AsyncReadExt as _;

#[derive(Clone, Copy, PartialEq)]
enum State {
    Start,
    Method,
    Target,
    Query,
    Done,
}

/// The rule, one byte at a time over the whole input.
fn model(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + 16);
    let mut s = State::Start;
    for &b in input {
        match s {
            State::Start => {
                if b != b'\r' && b != b'\n' {
                    s = State::Method;
                }
            }
            State::Method => {
                if b == b' ' {
                    s = State::Target;
                } else if b == b'\n' {
                    s = State::Done;
                }
            }
            State::Target | State::Query => {
                let esc: Option<&[u8]> = match b {
                    b'"' => Some(b"%22"),
                    b'<' => Some(b"%3C"),
                    b'>' => Some(b"%3E"),
                    b'`' => Some(b"%60"),
                    b'#' if s == State::Query => Some(b"%23"),
                    _ => None,
                };
                if let Some(e) = esc {
                    out.extend_from_slice(e);
                    continue;
                }
                match b {
                    b'\n' => s = State::Done,
                    b'?' => s = State::Query,
                    b' ' if s == State::Query => s = State::Target,
                    _ => {}
                }
            }
            State::Done => {}
        }
        out.push(b);
    }
    out
}

async fn read_through(input: &[u8], chunk: usize, cap: usize) -> Vec<u8> {
    let mut mock = tokio_test::io::Builder::new();
    for c in input.chunks(chunk) {
        mock.read(c);
    }
    let mut r = RequestLineRewriter::new(Box::new(mock.build()));
    let mut out = Vec::new();
    let mut buf = vec![0u8; cap];
    loop {
        match r.read(&mut buf).await {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read error: {e}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [c, k, input @ ..] = data else {
        return;
    };
    if input.len() > 16 * 1024 {
        return;
    }
    // Small sizes most of the time: read boundaries inside the line are the point.
    let chunk = if *c == 0 {
        input.len().max(1)
    } else {
        usize::from(*c % 64) + 1
    };
    let cap = if *k == 0 {
        64 * 1024
    } else {
        usize::from(*k % 64) + 1
    };
    let want = model(input);
    let got = runtime().block_on(read_through(input, chunk, cap));
    assert!(
        got == want,
        "chunk {chunk}, cap {cap}: {:?} != {:?}",
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
});
