//! The physical limit of our stack on this machine: a bare pingora pass-through proxy
//! from the same pingora version, with no authentication at all. Used by
//! benches/load/compare.sh as the baseline ssogate is measured against.
//!
//! It uses the same allocator as the ssogate binary (mimalloc), so that the comparison
//! measures ssogate's own work and nothing else.
//!
//! Usage: passthrough LISTEN_ADDR UPSTREAM_ADDR [THREADS] [HEADERS]
//!
//! With HEADERS > 0 it also sets that many constant request headers on the way upstream,
//! through the same pingora calls ssogate uses: the cost of the header work any gateway
//! that adds identity and `X-Forwarded-*` headers pays, measured apart from ssogate's own.

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct PassThrough {
    upstream: String,
    headers: Vec<(String, String)>,
}

#[async_trait]
impl ProxyHttp for PassThrough {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _s: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }

    async fn upstream_request_filter(
        &self,
        _s: &mut Session,
        upstream: &mut RequestHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        for (name, value) in &self.headers {
            upstream.insert_header(name.clone(), value.as_str())?;
        }
        Ok(())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(upstream)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: passthrough LISTEN_ADDR UPSTREAM_ADDR [THREADS] [HEADERS]");
        std::process::exit(2);
    };
    let threads = args.get(3).and_then(|t| t.parse().ok()).unwrap_or(2);
    let n_headers: usize = args.get(4).and_then(|t| t.parse().ok()).unwrap_or(0);
    let headers = (0..n_headers)
        .map(|i| (format!("X-Pass-{i}"), format!("value-{i}@contoso.example")))
        .collect();
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(
        &server.configuration,
        PassThrough {
            upstream: upstream.clone(),
            headers,
        },
    );
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run_forever()
}
