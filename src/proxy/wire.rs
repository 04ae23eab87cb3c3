//! The public listener's HTTP/1 entry: request lines as real clients send them.
//!
//! pingora parses a request line with httparse, which takes every visible byte in the
//! target, then builds an `http::Uri`, which refuses `"`, `<` and `>` in the query and
//! `<`, `>` and `` ` `` in the path. Such a request is answered 400 by pingora itself,
//! before any of our code runs. Entra's provisioning service and Microsoft's SCIM
//! validator send exactly that: `GET /scim/v2/Users?filter=userName+eq+"a%40b.com"`.
//!
//! So each HTTP/1 request line is rewritten as it is read: those four bytes, when they
//! appear after the method, become `%22`, `%3C`, `%3E` and `%60` (what a browser sends
//! for them, and what any URL decoder reads back as the same character). Nothing else of
//! the request is touched: only the bytes up to the first line feed of each request are
//! examined, and the stream is re-armed for the next request only when pingora hands the
//! connection back for reuse, which is exactly a request boundary because pipelining is
//! off (pingora refuses reuse when bytes of a next request were read early). The target
//! the gateway judges is this rewritten one, and it is the one forwarded upstream.
//!
//! HTTP/2 connections (ALPN `h2`) go to pingora unchanged: the h2 layer validates
//! `:path` itself and a client cannot put a raw `"` there in the first place.
//!
//! We never panic on hostile input: a rewrite only ever copies and expands bytes.

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How long an idle keep-alive connection is kept (pingora's own default).
const KEEPALIVE_SECS: u64 = 60;

/// The escaped form of a target byte the `http` crate refuses, if it is one. In the
/// query, a raw `#` is data too (a client that leaves it raw means `%23`: an Entra guest's
/// `#EXT#` userName), not the start of a fragment, which a request never carries.
fn escape(b: u8, in_query: bool) -> Option<&'static [u8; 3]> {
    match b {
        b'"' => Some(b"%22"),
        b'<' => Some(b"%3C"),
        b'>' => Some(b"%3E"),
        b'`' => Some(b"%60"),
        b'#' if in_query => Some(b"%23"),
        _ => None,
    }
}

/// Where the reader is in the current request line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Line {
    /// Before the method (empty lines before a request are allowed and skipped).
    Start,
    /// In the method.
    Method,
    /// After the first space: the target and the version, up to the line feed.
    Target,
    /// After the target's `?`.
    Query,
    /// Past the request line: everything passes unchanged until re-armed.
    Done,
}

/// Rewrites the request line of each request read through it (see the module docs).
/// Every other trait of the stream is its inner stream's.
#[derive(Debug)]
pub struct RequestLineRewriter {
    inner: Stream,
    line: Line,
    /// Rewritten bytes not yet handed to the reader, from `pending_at`.
    pending: Vec<u8>,
    pending_at: usize,
}

impl RequestLineRewriter {
    pub fn new(inner: Stream) -> Self {
        Self {
            inner,
            line: Line::Start,
            pending: Vec::new(),
            pending_at: 0,
        }
    }

    /// The next bytes read start a new request.
    fn rearm(&mut self) {
        self.line = Line::Start;
    }

    /// Advance the line state over `bytes`; the index of the first byte to escape, if any.
    fn scan(&mut self, bytes: &[u8]) -> Option<usize> {
        // Nearly every request: its whole line in this read, with no byte that could need
        // escaping anywhere in it. Passed in one sweep; anything else takes the walk below.
        if self.line == Line::Start {
            if let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
                let line = &bytes[..nl];
                let clean = !line.iter().fold(false, |any, &b| {
                    any | matches!(b, b'"' | b'<' | b'>' | b'`' | b'#')
                });
                if clean && line.first().is_some_and(|&b| b != b'\r') {
                    self.line = Line::Done;
                    return None;
                }
            }
        }
        for (i, &b) in bytes.iter().enumerate() {
            match self.line {
                Line::Done => return None,
                Line::Start => {
                    if b != b'\r' && b != b'\n' {
                        self.line = Line::Method;
                    }
                }
                Line::Method => {
                    if b == b' ' {
                        self.line = Line::Target;
                    } else if b == b'\n' {
                        self.line = Line::Done;
                    }
                }
                Line::Target | Line::Query => {
                    if b == b'\n' {
                        self.line = Line::Done;
                    } else if escape(b, self.line == Line::Query).is_some() {
                        return Some(i);
                    } else if b == b'?' {
                        self.line = Line::Query;
                    } else if b == b' ' && self.line == Line::Query {
                        // The version follows: nothing more to escape there anyway.
                        self.line = Line::Target;
                    }
                }
            }
        }
        None
    }

    /// `bytes[from..]` rewritten (the state already stands at `from`, a byte to escape).
    fn rewrite(&mut self, bytes: &[u8], from: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len() + 16);
        for &b in &bytes[from..] {
            if matches!(self.line, Line::Target | Line::Query) {
                if let Some(e) = escape(b, self.line == Line::Query) {
                    out.extend_from_slice(e);
                    continue;
                }
                match b {
                    b'\n' => self.line = Line::Done,
                    b'?' => self.line = Line::Query,
                    b' ' if self.line == Line::Query => self.line = Line::Target,
                    _ => {}
                }
            }
            out.push(b);
        }
        out
    }

    fn drain_pending(&mut self, buf: &mut ReadBuf<'_>) {
        let rest = &self.pending[self.pending_at..];
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        self.pending_at += n;
        if self.pending_at == self.pending.len() {
            self.pending.clear();
            self.pending_at = 0;
        }
    }
}

impl AsyncRead for RequestLineRewriter {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if !this.pending.is_empty() {
            this.drain_pending(buf);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        if this.line == Line::Done {
            return Poll::Ready(Ok(()));
        }
        // Scanned in place: nearly every request line needs no change, and costs no copy.
        if let Some(at) = this.scan(&buf.filled()[before..]) {
            // Keep what needs no change in place; the rest is rewritten and handed out
            // as the reader's buffer allows.
            let rest = buf.filled()[before + at..].to_owned();
            buf.set_filled(before + at);
            this.pending = this.rewrite(&rest, 0);
            this.pending_at = 0;
            this.drain_pending(buf);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for RequestLineRewriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for RequestLineRewriter {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for RequestLineRewriter {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for RequestLineRewriter {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for RequestLineRewriter {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> std::time::Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> std::time::Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for RequestLineRewriter {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for RequestLineRewriter {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for RequestLineRewriter {
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

/// The public listener's application: HTTP/1 connections read through a
/// [`RequestLineRewriter`], one request at a time; HTTP/2 straight to pingora.
pub struct PublicEntry<A> {
    http: Arc<A>,
}

impl<A> PublicEntry<A> {
    pub fn new(http: A) -> Self {
        Self {
            http: Arc::new(http),
        }
    }
}

#[async_trait]
impl<A> ServerApp for PublicEntry<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return ServerApp::process_new(&self.http, stream, shutdown).await;
        }
        let mut stream: Stream = Box::new(RequestLineRewriter::new(stream));
        let mut session = ServerSession::new_http1(stream);
        session.set_keepalive((!*shutdown.borrow()).then_some(KEEPALIVE_SECS));
        session.set_keepalive_reuses_remaining(
            self.http
                .server_options()
                .and_then(|o| o.keepalive_request_limit),
        );
        loop {
            let reused = self.http.process_new_http(session, shutdown).await?;
            let (next, settings) = reused.consume();
            // The stream handed back is ours; anything else closes the connection.
            let mut rewriter = next.into_any().downcast::<RequestLineRewriter>().ok()?;
            rewriter.rearm();
            stream = rewriter;
            session = ServerSession::new_http1(stream);
            if let Some(settings) = settings {
                settings.apply_to_session(&mut session);
            }
        }
    }

    async fn cleanup(&self) {
        self.http.http_cleanup().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Reads all of `input` through a rewriter whose inner stream yields `chunk`-sized
    /// reads, with a reader buffer of `cap` bytes.
    async fn read_through(input: &[u8], chunk: usize, cap: usize) -> Vec<u8> {
        let mut mock = tokio_test::io::Builder::new();
        for c in input.chunks(chunk) {
            mock.read(c);
        }
        let mut r = RequestLineRewriter::new(Box::new(mock.build()));
        let mut out = Vec::new();
        let mut buf = vec![0u8; cap];
        loop {
            let n = r.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[tokio::test]
    async fn entra_filter_quotes_are_escaped_in_the_line_only() {
        let req = b"GET /scim/v2/Users?filter=userName+eq+\"dale.mohr%40contoso.com\" HTTP/1.1\r\nHost: a\r\nX-J: \"q\" <b>\r\n\r\n{\"x\": \"<y>\"}";
        let want = b"GET /scim/v2/Users?filter=userName+eq+%22dale.mohr%40contoso.com%22 HTTP/1.1\r\nHost: a\r\nX-J: \"q\" <b>\r\n\r\n{\"x\": \"<y>\"}";
        for chunk in [1, 2, 3, 7, 40, 4096] {
            for cap in [1, 2, 5, 64, 8192] {
                assert_eq!(
                    read_through(req, chunk, cap).await,
                    want.to_vec(),
                    "chunk {chunk}, cap {cap}"
                );
            }
        }
    }

    #[tokio::test]
    async fn every_refused_byte_and_nothing_else() {
        let req = b"\r\nGET /a`b<c>?q=\"{|}^\\[]'  HTTP/1.1\r\n\r\n";
        let want = b"\r\nGET /a%60b%3Cc%3E?q=%22{|}^\\[]'  HTTP/1.1\r\n\r\n";
        assert_eq!(read_through(req, 5, 3).await, want.to_vec());
        // No target after a bare method line: nothing changes.
        assert_eq!(
            read_through(b"GET\n\"x\"", 2, 8).await,
            b"GET\n\"x\"".to_vec()
        );
    }

    #[tokio::test]
    async fn a_raw_hash_in_the_query_is_data() {
        let req = b"GET /scim/v2/Users?filter=userName+eq+\"ann_x.com#EXT#@t.onmicrosoft.com\" HTTP/1.1\r\n\r\n";
        let want = b"GET /scim/v2/Users?filter=userName+eq+%22ann_x.com%23EXT%23@t.onmicrosoft.com%22 HTTP/1.1\r\n\r\n";
        for chunk in [1, 3, 4096] {
            assert_eq!(read_through(req, chunk, 7).await, want.to_vec(), "{chunk}");
        }
        // In the path, `#` is left to pingora (a fragment, dropped).
        assert_eq!(
            read_through(b"GET /a#b HTTP/1.1\r\n\r\n", 4, 64).await,
            b"GET /a#b HTTP/1.1\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn a_clean_line_passes_in_one_sweep_and_the_rest_is_walked() {
        let mut r = RequestLineRewriter::new(Box::new(tokio_test::io::Builder::new().build()));
        // Clean: done at once, whatever follows the line.
        assert_eq!(
            r.scan(b"GET /a?q=1 HTTP/1.1\r\nX: \"<>\"\r\n\r\n\"`\""),
            None
        );
        assert_eq!(r.line, Line::Done);
        // A '#' before the query is walked, and left alone.
        r.rearm();
        assert_eq!(r.scan(b"GET /p#x?q=1 HTTP/1.1\r\n"), None);
        assert_eq!(r.line, Line::Done);
        // A line split across reads is walked, its state kept between them.
        r.rearm();
        assert_eq!(r.scan(b"GET /a?q="), None);
        assert_eq!(r.line, Line::Query);
        assert_eq!(r.scan(b"#x HTTP/1.1\r\n"), Some(0));
        // Empty lines before a request are skipped by the walk.
        r.rearm();
        assert_eq!(r.scan(b"\r\nGET /a?\"x\" HTTP/1.1\r\n"), Some(9));
    }

    #[test]
    fn rearming_starts_a_new_line() {
        let mut r = RequestLineRewriter::new(Box::new(tokio_test::io::Builder::new().build()));
        assert_eq!(r.scan(b"GET /x HTTP/1.1\r\n"), None);
        assert_eq!(r.scan(b"GET /\""), None, "past the line: untouched");
        r.rearm();
        assert_eq!(r.scan(b"GET /\""), Some(5));
    }
}
