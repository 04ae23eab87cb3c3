//! Sends exactly N requests over C keep-alive connections and checks every answer is a
//! 200: the fixed workload benches/load/compare.sh counts instructions, context switches
//! and syscalls over (a duration-driven tool such as wrk cannot send a fixed number).
//!
//! Usage: fixed_requests HOST:PORT PATH COOKIE CONNS N

use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn fail(msg: String) -> ! {
    eprintln!("fixed_requests: {msg}");
    std::process::exit(1)
}

/// One connection sending `n` requests in turn; the number of non-200 answers.
async fn connection(addr: String, request: Vec<u8>, n: usize) -> Result<usize, String> {
    let stream = TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut bad = 0;
    let mut line = String::new();
    let mut body = Vec::new();
    for _ in 0..n {
        write.write_all(&request).await.map_err(|e| e.to_string())?;
        line.clear();
        read.read_line(&mut line).await.map_err(|e| e.to_string())?;
        if !line.starts_with("HTTP/1.1 200 ") {
            bad += 1;
        }
        let mut length = None;
        loop {
            line.clear();
            if read.read_line(&mut line).await.map_err(|e| e.to_string())? == 0 {
                return Err("connection closed mid-response".into());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse::<usize>().ok();
                }
            }
        }
        let length = length.ok_or("a response without Content-Length")?;
        body.resize(length, 0);
        read.read_exact(&mut body)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(bad)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(addr), Some(path), Some(cookie), Some(conns), Some(n)) = (
        args.get(1),
        args.get(2),
        args.get(3),
        args.get(4).and_then(|c| c.parse::<usize>().ok()),
        args.get(5).and_then(|n| n.parse::<usize>().ok()),
    ) else {
        fail("usage: fixed_requests HOST:PORT PATH COOKIE CONNS N".into())
    };
    if conns == 0 || n % conns != 0 {
        fail(format!("N ({n}) must be a multiple of CONNS ({conns})"));
    }
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\n\r\n");
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            tokio::spawn(connection(
                addr.clone(),
                request.clone().into_bytes(),
                n / conns,
            ))
        })
        .collect();
    let mut bad = 0;
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(600), t).await {
            Ok(Ok(Ok(b))) => bad += b,
            Ok(Ok(Err(e))) => fail(e),
            Ok(Err(e)) => fail(e.to_string()),
            Err(_) => fail("timed out".into()),
        }
    }
    if bad > 0 {
        fail(format!("{bad} of {n} answers were not 200"));
    }
}
