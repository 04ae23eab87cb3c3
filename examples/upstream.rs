//! A fast upstream for load tests: answers every request with a small 200 text body.
//!
//! Usage: upstream LISTEN_ADDR [THREADS]

use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::prelude::*;
use pingora::protocols::http::ServerSession;
use pingora::server::configuration::ServerConf;
use pingora::services::listening::Service;

struct Hello;

#[async_trait]
impl ServeHttp for Hello {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let user = session
            .req_header()
            .headers
            .get("x-remote-user")
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default();
        let mut body = b"hello ".to_vec();
        body.extend_from_slice(&user);
        body.push(b'\n');
        http::Response::builder()
            .status(200)
            .header("content-type", "text/plain")
            .header("content-length", body.len())
            .body(body)
            .unwrap_or_default()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(listen) = args.get(1) else {
        eprintln!("usage: upstream LISTEN_ADDR [THREADS]");
        std::process::exit(2);
    };
    let threads = args.get(2).and_then(|t| t.parse().ok()).unwrap_or(1);
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = Service::new("upstream".into(), Hello);
    service.add_tcp(listen);
    server.add_service(service);
    server.run_forever()
}
