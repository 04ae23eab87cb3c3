//! A real HTTP/1.1 upstream on loopback that answers every request with the request
//! line and headers it received (one `name: value` per line, names lower-case).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub struct EchoUpstream {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl EchoUpstream {
    pub async fn start() -> EchoUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = sock.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_string();
                            let mut body = String::new();
                            for (i, line) in head.split("\r\n").enumerate() {
                                if i == 0 {
                                    body.push_str(line);
                                    body.push('\n');
                                } else if let Some((n, v)) = line.split_once(':') {
                                    body.push_str(&format!(
                                        "{}: {}\n",
                                        n.to_ascii_lowercase(),
                                        v.trim()
                                    ));
                                }
                            }
                            let resp = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                                body.len(),
                                body
                            );
                            let _ = sock.write_all(resp.as_bytes()).await;
                            let _ = sock.shutdown().await;
                            return;
                        }
                        if buf.len() > 64 * 1024 {
                            return;
                        }
                    }
                });
            }
        });
        EchoUpstream { port, task }
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The header values an echoed body shows for `name` (lower-case).
pub fn echoed(body: &str, name: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.split_once(": "))
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| v.to_string())
        .collect()
}
