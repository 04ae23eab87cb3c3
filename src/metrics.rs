//! Every metric the gateway exports, registered once. Reference these statics rather
//! than repeating a name as a literal. All names start with `ssogate_`.

use prometheus::{
    exponential_buckets, Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::LazyLock;

pub struct Metrics {
    pub registry: Registry,
    /// Requests answered, by app, route and status.
    pub requests: IntCounterVec,
    /// Completed logins by app and result ("success" | "failure").
    pub logins: IntCounterVec,
    /// Failed logins by app and failed check.
    pub login_failures: IntCounterVec,
    /// Requests refused by route policy.
    pub denials: IntCounterVec,
    /// Requests refused before any policy: ambiguous targets, untrusted forward-auth
    /// callers, cross-site requests (a fixed set of reasons).
    pub requests_refused: IntCounterVec,
    /// Sign-outs by app, initiator ("sp" | "idp") and result ("success" | reason).
    pub logouts: IntCounterVec,
    /// Sessions ended by IdP-initiated Single Logout.
    pub slo_sessions_ended: IntCounterVec,
    /// SCIM requests by resource, method and status.
    pub scim_requests: IntCounterVec,
    /// SCIM changes by resource and kind of change (create, update, delete, disable,
    /// enable, rename, members_added, members_removed).
    pub scim_changes: IntCounterVec,
    /// SCIM requests refused for exceeding a limit, by limit.
    pub scim_refused: IntCounterVec,
    /// Sessions ended other than by their own expiry or logout, by cause.
    pub sessions_revoked: IntCounterVec,
    /// Unix time of the last successful IdP metadata fetch, by app.
    pub idp_metadata_last_success: IntGaugeVec,
    /// Failed IdP metadata fetches (unreachable, invalid, badly signed), by app.
    pub idp_metadata_refresh_failures: IntCounterVec,
    /// IdP signing keys currently trusted, by app (set at scrape time).
    pub idp_signing_keys: IntGaugeVec,
    /// Time from request start to the upstream's response header, by app.
    pub upstream_latency: HistogramVec,
    /// Requests the proxy could not complete (upstream unreachable, timed out, broken),
    /// by app and reason.
    pub upstream_errors: IntCounterVec,
    /// Session store operations that failed (unreachable, timeout), by operation.
    pub store_errors: IntCounterVec,
    /// 1 while the session store answers pings.
    pub store_up: IntGauge,
    /// Time of each session store operation, by operation (Redis store).
    pub store_duration: HistogramVec,
    /// Redis requests that failed, by kind (one of [`STORE_FAILURE_KINDS`]).
    pub store_failures: IntCounterVec,
    /// Redis connections rebuilt after failures (a new connection, or, with Sentinel, a
    /// new look for the primary).
    pub store_reconnects: IntCounter,
    /// Sentinel failovers seen: the primary found is another than before.
    pub store_failovers: IntCounter,
    /// 1 while the revocation subscription is live (the session cache is trusted).
    pub revocation_feed_up: IntGauge,
    /// notAfter (Unix time) of every certificate trusted or presented, by kind, app and
    /// SHA-1 thumbprint (gateway/certs.rs).
    pub certificate_expiry: IntGaugeVec,
    /// Sessions held in the in-process cache (set at scrape time).
    pub session_cache_entries: IntGauge,
    /// Requests whose session came from the in-process cache because the store could
    /// not answer (within `cache_ttl` of the session's last read).
    pub session_outage_fallbacks: IntCounter,
    /// Config reloads by result ("success" | "failure").
    pub config_reloads: IntCounterVec,
    /// Unix time the running config was loaded (start or last successful reload).
    pub config_last_reload_success: IntGauge,
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    let requests = IntCounterVec::new(
        Opts::new(
            "ssogate_requests_total",
            "Requests answered by the public listener",
        ),
        &["app", "route", "status"],
    )?;
    let logins = IntCounterVec::new(
        Opts::new("ssogate_logins_total", "SAML logins by result"),
        &["app", "result"],
    )?;
    let login_failures = IntCounterVec::new(
        Opts::new(
            "ssogate_login_failures_total",
            "Refused SAML responses by failed check",
        ),
        &["app", "reason"],
    )?;
    let denials = IntCounterVec::new(
        Opts::new(
            "ssogate_access_denied_total",
            "Requests refused by route policy",
        ),
        &["app", "route", "reason"],
    )?;
    let requests_refused = IntCounterVec::new(
        Opts::new(
            "ssogate_requests_refused_total",
            "Requests refused before any route policy, by reason",
        ),
        &["reason"],
    )?;
    let logouts = IntCounterVec::new(
        Opts::new("ssogate_logouts_total", "Sign-outs by initiator and result"),
        &["app", "initiator", "result"],
    )?;
    let slo_sessions_ended = IntCounterVec::new(
        Opts::new(
            "ssogate_slo_sessions_ended_total",
            "Sessions ended by IdP-initiated Single Logout",
        ),
        &["app"],
    )?;
    let scim_requests = IntCounterVec::new(
        Opts::new("ssogate_scim_requests_total", "SCIM requests answered"),
        &["resource", "method", "status"],
    )?;
    let scim_changes = IntCounterVec::new(
        Opts::new(
            "ssogate_scim_changes_total",
            "SCIM changes by resource and kind of change",
        ),
        &["resource", "change"],
    )?;
    let scim_refused = IntCounterVec::new(
        Opts::new(
            "ssogate_scim_refused_total",
            "SCIM requests refused for exceeding a limit",
        ),
        &["limit"],
    )?;
    let sessions_revoked = IntCounterVec::new(
        Opts::new(
            "ssogate_sessions_revoked_total",
            "Sessions ended by SCIM deactivation or deletion, or by IdP-initiated logout",
        ),
        &["cause"],
    )?;
    let idp_metadata_last_success = IntGaugeVec::new(
        Opts::new(
            "ssogate_idp_metadata_last_success_timestamp_seconds",
            "Unix time of the last successful IdP metadata fetch",
        ),
        &["app"],
    )?;
    let idp_metadata_refresh_failures = IntCounterVec::new(
        Opts::new(
            "ssogate_idp_metadata_refresh_failures_total",
            "Failed IdP metadata fetches (the last good metadata stays in use)",
        ),
        &["app"],
    )?;
    let idp_signing_keys = IntGaugeVec::new(
        Opts::new(
            "ssogate_idp_signing_keys",
            "IdP signing keys currently trusted",
        ),
        &["app"],
    )?;
    let upstream_latency = HistogramVec::new(
        HistogramOpts::new(
            "ssogate_upstream_latency_seconds",
            "Time until the upstream's response header",
        )
        .buckets(exponential_buckets(0.0005, 2.0, 16)?),
        &["app"],
    )?;
    let upstream_errors = IntCounterVec::new(
        Opts::new(
            "ssogate_upstream_errors_total",
            "Requests the gateway could not complete with the upstream, by reason",
        ),
        &["app", "reason"],
    )?;
    let store_errors = IntCounterVec::new(
        Opts::new(
            "ssogate_store_errors_total",
            "Failed session store operations",
        ),
        &["op"],
    )?;
    let store_up = IntGauge::new("ssogate_store_up", "1 while the session store is reachable")?;
    let store_duration = HistogramVec::new(
        HistogramOpts::new(
            "ssogate_store_duration_seconds",
            "Time of each session store operation (Redis), failed ones included",
        )
        .buckets(exponential_buckets(0.0001, 2.0, 16)?),
        &["op"],
    )?;
    let store_failures = IntCounterVec::new(
        Opts::new(
            "ssogate_store_failures_total",
            "Redis requests that failed, by kind (timeout, unreachable, readonly, auth, no_primary, server, corrupt)",
        ),
        &["kind"],
    )?;
    for kind in STORE_FAILURE_KINDS {
        store_failures.with_label_values(&[kind]);
    }
    let store_reconnects = IntCounter::new(
        "ssogate_store_reconnects_total",
        "Redis connections rebuilt after failures (with Sentinel: the primary looked for again)",
    )?;
    let store_failovers = IntCounter::new(
        "ssogate_store_failovers_total",
        "Redis Sentinel failovers seen (the primary is another node than before)",
    )?;
    let revocation_feed_up = IntGauge::new(
        "ssogate_revocation_feed_up",
        "1 while the session revocation subscription is live (the session cache is trusted only then)",
    )?;
    registry.register(Box::new(revocation_feed_up.clone()))?;
    let certificate_expiry = IntGaugeVec::new(
        Opts::new(
            "ssogate_certificate_expiry_timestamp_seconds",
            "When each certificate the gateway trusts or presents expires (notAfter, Unix time)",
        ),
        &["kind", "app", "thumbprint"],
    )?;
    registry.register(Box::new(certificate_expiry.clone()))?;
    let session_cache_entries = IntGauge::new(
        "ssogate_session_cache_entries",
        "Sessions held in the in-process cache",
    )?;
    let session_outage_fallbacks = IntCounter::new(
        "ssogate_session_outage_fallbacks_total",
        "Sessions served from the in-process cache while the session store could not answer",
    )?;
    registry.register(Box::new(session_outage_fallbacks.clone()))?;
    let config_reloads = IntCounterVec::new(
        Opts::new(
            "ssogate_config_reload_total",
            "Config reloads (SIGHUP, ssogate reload) by result; a failed one keeps the running config",
        ),
        &["result"],
    )?;
    registry.register(Box::new(config_reloads.clone()))?;
    let config_last_reload_success = IntGauge::new(
        "ssogate_config_last_reload_success_timestamp_seconds",
        "When the running config was loaded (start or last successful reload), Unix time",
    )?;
    registry.register(Box::new(config_last_reload_success.clone()))?;
    registry.register(Box::new(requests.clone()))?;
    registry.register(Box::new(logins.clone()))?;
    registry.register(Box::new(login_failures.clone()))?;
    registry.register(Box::new(denials.clone()))?;
    registry.register(Box::new(requests_refused.clone()))?;
    registry.register(Box::new(logouts.clone()))?;
    registry.register(Box::new(slo_sessions_ended.clone()))?;
    registry.register(Box::new(scim_requests.clone()))?;
    registry.register(Box::new(scim_changes.clone()))?;
    registry.register(Box::new(scim_refused.clone()))?;
    registry.register(Box::new(sessions_revoked.clone()))?;
    registry.register(Box::new(idp_metadata_last_success.clone()))?;
    registry.register(Box::new(idp_metadata_refresh_failures.clone()))?;
    registry.register(Box::new(idp_signing_keys.clone()))?;
    registry.register(Box::new(upstream_latency.clone()))?;
    registry.register(Box::new(upstream_errors.clone()))?;
    registry.register(Box::new(store_errors.clone()))?;
    registry.register(Box::new(store_up.clone()))?;
    registry.register(Box::new(store_duration.clone()))?;
    registry.register(Box::new(store_failures.clone()))?;
    registry.register(Box::new(store_reconnects.clone()))?;
    registry.register(Box::new(store_failovers.clone()))?;
    registry.register(Box::new(session_cache_entries.clone()))?;
    Ok(Metrics {
        registry,
        requests,
        logins,
        login_failures,
        denials,
        requests_refused,
        logouts,
        slo_sessions_ended,
        scim_requests,
        scim_changes,
        scim_refused,
        sessions_revoked,
        idp_metadata_last_success,
        idp_metadata_refresh_failures,
        idp_signing_keys,
        upstream_latency,
        upstream_errors,
        store_errors,
        store_up,
        store_duration,
        store_failures,
        store_reconnects,
        store_failovers,
        revocation_feed_up,
        certificate_expiry,
        session_cache_entries,
        session_outage_fallbacks,
        config_reloads,
        config_last_reload_success,
    })
}

/// The kinds of `ssogate_store_failures_total`, each exported from the start.
pub const STORE_FAILURE_KINDS: [&str; 7] = [
    "timeout",
    "unreachable",
    "readonly",
    "auth",
    "no_primary",
    "server",
    "corrupt",
];

#[allow(clippy::expect_used)]
pub static METRICS: LazyLock<Metrics> =
    // Only fails on a duplicate or malformed name: a programming error caught by every test.
    LazyLock::new(|| build().expect("metric definitions are valid"));

/// Prometheus text exposition of every ssogate metric.
pub fn render() -> Vec<u8> {
    let mut buf = Vec::new();
    let families = METRICS.registry.gather();
    if TextEncoder::new().encode(&families, &mut buf).is_err() {
        buf.clear();
    }
    buf
}

#[cfg(test)]
mod tests {
    #[test]
    fn metrics_render_with_prefix() {
        super::METRICS
            .store_errors
            .with_label_values(&["get"])
            .inc();
        let text = String::from_utf8(super::render()).unwrap();
        assert!(text.contains("ssogate_store_errors_total{op=\"get\"}"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("ssogate_"), "{line}");
        }
    }
}
