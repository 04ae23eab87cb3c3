use super::*;
use std::collections::HashMap;

fn dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/config"))
}

fn no_env() -> HashMap<String, String> {
    HashMap::new()
}

/// A private SP key pair (`sp-key.pem`, mode 600, and `sp-cert.pem`) beside a copy of
/// the example IdP metadata, in a fresh directory.
fn keys_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let key = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let cert = crate::saml::devidp::self_signed_certificate(&key).unwrap();
    write_private(
        &d.path().join("sp-key.pem"),
        &key.private_key_to_pem_pkcs8().unwrap(),
    );
    std::fs::write(d.path().join("sp-cert.pem"), cert.to_pem().unwrap()).unwrap();
    std::fs::copy(
        dir().join("entra-metadata.xml"),
        d.path().join("entra-metadata.xml"),
    )
    .unwrap();
    d
}

fn write_private(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn the_issue_example_parses() {
    let text = std::fs::read_to_string(dir().join("ssogate.toml")).unwrap();
    let c = from_str(&text, &dir(), &no_env()).unwrap();
    assert_eq!(c.listen_public.to_string(), "0.0.0.0:8080");
    assert_eq!(c.session.idle_timeout, Duration::from_secs(30 * 60));
    assert_eq!(c.session.absolute_timeout, Duration::from_secs(8 * 3600));
    assert!(c.session.cookie_secure);
    let app = &c.apps[0];
    assert_eq!(app.hosts, vec!["wiki.example.com"]);
    assert_eq!(app.sp.acs_path, "/saml/acs");
    assert_eq!(app.idp.clock_skew, Duration::from_secs(180));
    assert_eq!(app.routes.len(), 2);
    assert!(matches!(app.idp.source, IdpSource::Metadata { .. }));
}

#[test]
fn query_string_acs_is_kept() {
    let text = std::fs::read_to_string(dir().join("pymetrics-style.toml")).unwrap();
    let c = from_str(&text, &dir(), &no_env()).unwrap();
    assert_eq!(c.apps[0].sp.acs_path, "/saml2-sp/acme/acme/metadata/");
    assert_eq!(c.apps[0].sp.acs_query.as_deref(), Some("acs"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
[listen]
public = "not-an-address"
[session]
store = "redis"
idle_timeout = "soon"
[[app]]
name = "a b"
hosts = ["https://x.example.com/"]
upstream = "ftp://x"
[app.sp]
acs_url = "/relative"
[app.idp]
metadata_file = "does-not-exist.xml"
[[app.route]]
path = "admin"
public = true
allow_groups = ["x"]
"#;
    let err = from_str(text, &dir(), &no_env()).unwrap_err();
    let all = err.0.join("\n");
    for needle in [
        "listen.public",
        "session.redis_url",
        "session.idle_timeout",
        "app[0] (a b).name",
        "hosts",
        "upstream",
        "sp.entity_id",
        "sp.acs_url",
        "idp.metadata_file",
        "route[0].path",
        "public route cannot also have allow_",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    assert!(err.0.len() >= 11, "{all}");
}

#[test]
fn unknown_keys_are_refused() {
    let err = from_str("[listen]\npublik = \"x\"\n", &dir(), &no_env()).unwrap_err();
    assert!(err.0[0].contains("publik"), "{:?}", err.0);
}

#[test]
fn env_overrides_file_and_secrets_stay_hidden() {
    let text = std::fs::read_to_string(dir().join("ssogate.toml")).unwrap();
    let mut env = no_env();
    env.insert(
        ENV_REDIS_URL.into(),
        "redis://:hunter2@10.1.1.1:6380/2".into(),
    );
    env.insert(ENV_REDIS_PASSWORD.into(), "s3cret-pass".into());
    env.insert(ENV_LISTEN_PUBLIC.into(), "127.0.0.1:18080".into());
    let c = from_str(&text, &dir(), &env).unwrap();
    assert_eq!(c.listen_public.to_string(), "127.0.0.1:18080");
    match &c.session.store {
        StoreConfig::Redis { url, password, .. } => {
            assert_eq!(url.expose(), "redis://:hunter2@10.1.1.1:6380/2");
            assert_eq!(password.as_ref().unwrap().expose(), "s3cret-pass");
        }
        other => panic!("{other:?}"),
    }
    let debug = format!("{c:?}");
    assert!(
        !debug.contains("hunter2") && !debug.contains("s3cret"),
        "{debug}"
    );
}

/// A minimal config whose `[session]` is `session` (the rest from the example).
fn with_session(session: &str) -> String {
    format!(
        "[listen]\npublic = \"127.0.0.1:18080\"\n[session]\n{session}\n\
         [[app]]\nname = \"wiki\"\nhosts = [\"*\"]\nupstream = \"http://127.0.0.1:9\"\n\
         [app.sp]\nentity_id = \"https://wiki.example.test/saml\"\nacs_url = \"https://wiki.example.test/saml/acs\"\n\
         [app.idp]\nentity_id = \"https://idp.example.test/\"\nsso_url = \"https://idp.example.test/sso\"\ncertificate_file = \"example-idp.pem\"\n"
    )
}

#[test]
fn rediss_with_an_acl_user_is_accepted_and_summarised_without_secrets() {
    let mut env = no_env();
    env.insert(ENV_REDIS_USERNAME.into(), "gateway".into());
    env.insert(ENV_REDIS_PASSWORD.into(), "s3cret-pass".into());
    let text = with_session(
        "store = \"redis\"\nredis_url = \"rediss://cache.redis.cache.windows.net:6380/0\"\nredis_username = \"ignored\"",
    );
    let c = from_str(&text, &dir(), &env).unwrap();
    match &c.session.store {
        StoreConfig::Redis {
            username,
            summary,
            ca_pem,
            ..
        } => {
            assert_eq!(username.as_deref(), Some("gateway"));
            assert!(ca_pem.is_none());
            assert_eq!(
                summary,
                "TLS (at least 1.2, server name checked) trusting the system's CAs, ACL user \"gateway\" from SSOGATE_REDIS_USERNAME, password from SSOGATE_REDIS_PASSWORD"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn redis_tls_settings_that_cannot_work_are_refused_together() {
    let text = with_session(
        "store = \"redis\"\nredis_url = \"redis://:hunter2@10.0.0.5:6379/#insecure\"\n\
         redis_ca_file = \"nowhere/ca.pem\"\nredis_client_cert_file = \"client.pem\"\nredis_username = \"\"",
    );
    let err = from_str(&text, &dir(), &no_env()).unwrap_err();
    let all = err.0.join("\n");
    for needle in [
        "session.redis_ca_file",
        "give both or neither",
        "session.redis_username (redis_username): empty",
        "TLS settings need a rediss:// URL",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    assert!(!all.contains("hunter2"), "{all}");
    let err = from_str(
        &with_session("store = \"redis\"\nredis_url = \"rediss://10.0.0.5:6380/#insecure\""),
        &dir(),
        &no_env(),
    )
    .unwrap_err();
    assert!(err.0.join("\n").contains("#insecure"), "{err:?}");
}

#[test]
fn sentinel_addresses_and_the_master_name_are_read_and_summarised() {
    let mut env = no_env();
    env.insert(ENV_REDIS_SENTINEL_PASSWORD.into(), "sentinel-s3cret".into());
    let text = with_session(
        "store = \"redis\"\nredis_url = \"rediss://mymaster/2\"\n\
         redis_sentinels = [\"10.0.0.5:26380\", \"sentinel-b\", \"[fd00::7]:26379\"]\n\
         redis_sentinel_username = \"watcher\"",
    );
    let c = from_str(&text, &dir(), &env).unwrap();
    match &c.session.store {
        StoreConfig::Redis {
            sentinels,
            sentinel_username,
            sentinel_password,
            summary,
            ..
        } => {
            assert_eq!(
                sentinels,
                &vec![
                    ("10.0.0.5".to_string(), 26380),
                    ("sentinel-b".to_string(), 26379),
                    ("fd00::7".to_string(), 26379),
                ]
            );
            assert_eq!(sentinel_username.as_deref(), Some("watcher"));
            assert_eq!(
                sentinel_password.as_ref().unwrap().expose(),
                "sentinel-s3cret"
            );
            assert_eq!(
                summary,
                "Sentinel: the primary of \"mymaster\" as 3 Sentinel(s) name it (10.0.0.5:26380, sentinel-b:26379, fd00::7:26379), Sentinel ACL user \"watcher\", Sentinel password from SSOGATE_REDIS_SENTINEL_PASSWORD, TLS (at least 1.2, server name checked) trusting the system's CAs, user \"default\", no password"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!format!("{c:?}").contains("sentinel-s3cret"));
}

#[test]
fn sentinel_settings_that_cannot_work_are_refused_together() {
    let text = with_session(
        "store = \"redis\"\nredis_url = \"redis://10.0.0.5:6379/0\"\n\
         redis_sentinels = [\"10.0.0.5:26379\", \"10.0.0.5:26379\", \"user@host:1\", \"h:notaport\"]\n\
         redis_sentinel_username = \"\"",
    );
    let all = from_str(&text, &dir(), &no_env()).unwrap_err().0.join("\n");
    for needle in [
        "the URL's host is the master name the Sentinels monitor, without a port",
        "\"10.0.0.5:26379\" listed twice",
        "\"user@host:1\" is not host:port",
        "\"h:notaport\" is not host:port",
        "session.redis_sentinel_username: empty",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    let all = from_str(
        &with_session("store = \"redis\"\nredis_url = \"redis://m/0\"\nredis_sentinels = []"),
        &dir(),
        &no_env(),
    )
    .unwrap_err()
    .0
    .join("\n");
    assert!(all.contains("session.redis_sentinels: empty"), "{all}");
    let mut env = no_env();
    env.insert(ENV_REDIS_SENTINEL_PASSWORD.into(), "x".into());
    let all = from_str(
        &with_session("store = \"redis\"\nredis_url = \"redis://m/0\""),
        &dir(),
        &env,
    )
    .unwrap_err()
    .0
    .join("\n");
    assert!(
        all.contains("Sentinel settings without session.redis_sentinels"),
        "{all}"
    );
}

#[test]
fn redis_timeouts_are_read_and_bounded() {
    let c = from_str(
        &with_session(
            "store = \"redis\"\nredis_url = \"redis://10.0.0.5/0\"\n\
             redis_connect_timeout = \"500ms\"\nredis_command_timeout = \"250ms\"",
        ),
        &dir(),
        &no_env(),
    )
    .unwrap();
    match &c.session.store {
        StoreConfig::Redis {
            connect_timeout,
            command_timeout,
            ..
        } => {
            assert_eq!(*connect_timeout, Duration::from_millis(500));
            assert_eq!(*command_timeout, Duration::from_millis(250));
        }
        other => panic!("{other:?}"),
    }
    let all = from_str(
        &with_session(
            "store = \"redis\"\nredis_url = \"redis://10.0.0.5/0\"\n\
             redis_connect_timeout = \"0s\"\nredis_command_timeout = \"2m\"",
        ),
        &dir(),
        &no_env(),
    )
    .unwrap_err()
    .0
    .join("\n");
    assert!(
        all.contains("session.redis_connect_timeout: between 1ms and 60s"),
        "{all}"
    );
    assert!(
        all.contains("session.redis_command_timeout: between 1ms and 60s"),
        "{all}"
    );
}

#[test]
fn a_cluster_is_named_and_what_it_cannot_have_is_refused_together() {
    let c = from_str(
        &with_session(
            "store = \"redis\"\nredis_url = \"rediss://cache.redis.azure.net:10000\"\nredis_cluster = true",
        ),
        &dir(),
        &no_env(),
    )
    .unwrap();
    match &c.session.store {
        StoreConfig::Redis {
            cluster, summary, ..
        } => {
            assert!(cluster);
            assert!(
                summary
                    .starts_with("Cluster: the nodes found from cache.redis.azure.net:10000, TLS"),
                "{summary}"
            );
        }
        other => panic!("{other:?}"),
    }
    let all = from_str(
        &with_session(
            "store = \"redis\"\nredis_url = \"rediss://n1:6380/2\"\nredis_cluster = true\n\
             redis_sentinels = [\"s1\"]\nredis_ca_file = \"example-idp.pem\"",
        ),
        &dir(),
        &no_env(),
    )
    .unwrap_err()
    .0
    .join("\n");
    for needle in [
        "a Redis Cluster has no Sentinels",
        "a Redis Cluster has only database 0",
        "trusts the system's CAs for a Cluster",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
}

#[test]
fn two_apps_cannot_share_a_host() {
    let text = std::fs::read_to_string(dir().join("ssogate.toml")).unwrap();
    let app = text.split("[[app]]").nth(1).unwrap();
    let doubled = format!(
        "{text}\n[[app]]{}",
        app.replace("name = \"wiki\"", "name = \"wiki2\"")
    );
    let err = from_str(&doubled, &dir(), &no_env()).unwrap_err();
    assert!(
        err.0
            .iter()
            .any(|e| e.contains("already served by app \"wiki\"")),
        "{:?}",
        err.0
    );
}

#[test]
fn slo_keys_and_signing_options_are_checked_together() {
    let text = r#"
[listen]
public = "127.0.0.1:8080"
[[app]]
name = "a"
hosts = ["a.example.com"]
upstream = "http://127.0.0.1:3000"
logout_return_path = "bye"
redirect_allow_hosts = ["https://portal.example.com/"]
[app.sp]
entity_id = "https://a.example.com/saml"
acs_url = "https://a.example.com/saml/acs"
slo_url = "/saml/slo"
signing_key_file = "sp-key.pem"
sign_authn_requests = true
[app.idp]
metadata_file = "entra-metadata.xml"
want_assertions_signed = false
want_response_signed = false
"#;
    let err = from_str(text, &dir(), &no_env()).unwrap_err();
    let all = err.0.join("\n");
    for needle in [
        "app[0] (a).logout_return_path",
        "app[0] (a).redirect_allow_hosts",
        "app[0] (a).sp.slo_url",
        "signing_key_file and certificate_file go together",
        "app[0] (a).sp.sign_authn_requests",
        "want_assertions_signed and want_response_signed cannot both be false",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
}

#[test]
fn slo_and_keys_parse() {
    let text = r#"
[listen]
public = "127.0.0.1:8080"
[[app]]
name = "a"
hosts = ["a.example.com"]
upstream = "http://127.0.0.1:3000"
logout_return_path = "https://portal.example.com/signed-out"
[app.sp]
entity_id = "https://a.example.com/saml"
acs_url = "https://a.example.com/saml/acs"
slo_url = "https://a.example.com/saml/slo"
signing_key_file = "sp-key.pem"
certificate_file = "sp-cert.pem"
[app.idp]
metadata_file = "entra-metadata.xml"
want_response_signed = true
"#;
    let keys = keys_dir();
    let c = from_str(text, keys.path(), &no_env()).unwrap();
    let app = &c.apps[0];
    assert_eq!(app.sp.slo_path.as_deref(), Some("/saml/slo"));
    assert!(app.sp.keys.is_some());
    assert!(app.sp.sign_authn_requests);
    assert!(app.idp.want_assertions_signed && app.idp.want_response_signed);
    assert!(app.idp.require_signed_logout);
    // the key never shows in Debug output
    let debug = format!("{:?}", app.sp.keys);
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
}

#[test]
fn previous_sp_keys_need_the_current_one_and_stay_hidden() {
    let base = r#"
[listen]
public = "127.0.0.1:8080"
[[app]]
name = "a"
hosts = ["a.example.com"]
upstream = "http://127.0.0.1:3000"
[app.sp]
entity_id = "https://a.example.com/saml"
acs_url = "https://a.example.com/saml/acs"
[app.idp]
metadata_file = "entra-metadata.xml"
"#;
    let alone = base.replace(
        "[app.idp]",
        "previous_key_files = [\"sp-key.pem\"]\n[app.idp]",
    );
    let keys = keys_dir();
    let all = from_str(&alone, keys.path(), &no_env())
        .unwrap_err()
        .0
        .join("\n");
    assert!(
        all.contains("app[0] (a).sp.previous_key_files: needs the current key"),
        "{all}"
    );

    let missing = base.replace(
        "[app.idp]",
        concat!(
            "signing_key_file = \"sp-key.pem\"\n",
            "certificate_file = \"sp-cert.pem\"\n",
            "previous_key_files = [\"sp-key.pem\", \"no-such-key.pem\"]\n[app.idp]"
        ),
    );
    let all = from_str(&missing, keys.path(), &no_env())
        .unwrap_err()
        .0
        .join("\n");
    assert!(
        all.contains("sp.previous_key_files[1]: cannot read"),
        "{all}"
    );

    let ok = missing.replace(", \"no-such-key.pem\"", "");
    let c = from_str(&ok, keys.path(), &no_env()).unwrap();
    let sp_keys = c.apps[0].sp.keys.as_ref().unwrap();
    assert_eq!(sp_keys.previous.len(), 1);
    let debug = format!("{sp_keys:?}");
    assert!(
        debug.contains("sp-key.pem") && !debug.contains("PRIVATE KEY"),
        "{debug}"
    );
}

#[test]
fn published_example_secrets_and_world_readable_keys_are_refused() {
    let keys = keys_dir();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/refused");
    let published = std::fs::read(format!("{fixtures}/example-sp-key.pem")).unwrap();
    write_private(&keys.path().join("published-key.pem"), &published);
    let token = std::fs::read(format!("{fixtures}/example-scim-token")).unwrap();
    write_private(&keys.path().join("published-token"), &token);
    let text = r#"
[listen]
public = "127.0.0.1:8080"
[scim]
enabled = true
token_file = "published-token"
[[app]]
name = "a"
hosts = ["a.example.com"]
upstream = "http://127.0.0.1:3000"
[app.sp]
entity_id = "https://a.example.com/saml"
acs_url = "https://a.example.com/saml/acs"
signing_key_file = "published-key.pem"
certificate_file = "sp-cert.pem"
[app.idp]
metadata_file = "entra-metadata.xml"
"#;
    let all = from_str(text, keys.path(), &no_env())
        .unwrap_err()
        .0
        .join("\n");
    assert!(
        all.contains("sp.signing_key_file") && all.contains("example key published"),
        "{all}"
    );
    assert!(
        all.contains("scim: a token is the example published"),
        "{all}"
    );

    // A key every user can read.
    use std::os::unix::fs::PermissionsExt as _;
    let open_key = keys.path().join("sp-key.pem");
    std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = text.replace("published-key.pem", "sp-key.pem").replace(
        "[scim]\nenabled = true\ntoken_file = \"published-token\"\n",
        "",
    );
    let all = from_str(&text, keys.path(), &no_env())
        .unwrap_err()
        .0
        .join("\n");
    assert!(all.contains("readable by every user"), "{all}");
    std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(
        from_str(&text, keys.path(), &no_env()).is_ok(),
        "group-readable is fine"
    );
}
