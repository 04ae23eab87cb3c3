//! `ssogate saml inspect` and `ssogate saml inspect-metadata`: what an admin debugging a
//! failing Entra sign-in needs, offline. The message is decoded (base64 as posted, a
//! Redirect-binding URL or query, or raw XML), summarised, its signatures checked against
//! each configured IdP certificate in turn, each check of the chain shown with the value
//! expected and the value found, and the verdict of the very validator the ACS uses.
//!
//! This is an admin tool on the admin's own data: unlike logs and error pages, it prints
//! assertion contents (NameID, attributes).

use crate::gateway::App;
use crate::saml::logout::LogoutChecks;
use crate::saml::redirect::{parse_redirect_query, public_keys, MessageParam};
use crate::saml::xml::{child, text_of, NS_ASSERTION, NS_DSIG, NS_PROTOCOL};
use crate::saml::{self, IdpSettings, SamlError};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use openssl::hash::MessageDigest;
use openssl::x509::X509;
use roxmltree::Node;
use std::fmt::Write as _;

/// A message as given on the command line.
enum Input {
    /// XML of a POST-binding message (SAMLResponse).
    Posted(String),
    /// A Redirect-binding query (the part after `?`).
    Redirect(String),
}

fn decode_input(raw: &str) -> Result<Input, String> {
    let t = raw.trim().trim_start_matches('\u{feff}');
    if t.starts_with('<') {
        return Ok(Input::Posted(t.to_string()));
    }
    if let Some((_, q)) = t.split_once('?') {
        if q.contains("SAMLRequest=") || q.contains("SAMLResponse=") {
            return Ok(Input::Redirect(q.to_string()));
        }
    }
    if t.starts_with("SAMLRequest=") || t.starts_with("SAMLResponse=") {
        // A Redirect-binding query inflates; a posted form body does not.
        if parse_redirect_query(t).and_then(|q| q.xml()).is_ok() {
            return Ok(Input::Redirect(t.to_string()));
        }
        // A posted form body: SAMLResponse=...&RelayState=...
        let value = url::form_urlencoded::parse(t.as_bytes())
            .find(|(k, _)| k == "SAMLResponse")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        return decode_base64(&value).map(Input::Posted);
    }
    // Base64 as posted, maybe still percent-encoded.
    decode_base64(t)
        .or_else(|_| {
            let unescaped = percent_encoding::percent_decode_str(t)
                .decode_utf8()
                .map_err(|_| "not UTF-8".to_string())?;
            decode_base64(&unescaped)
        })
        .map(Input::Posted)
}

fn decode_base64(s: &str) -> Result<String, String> {
    let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = STANDARD
        .decode(compact.trim_end_matches('='))
        .or_else(|_| STANDARD.decode(&compact))
        .map_err(|_| "not base64, XML or a Redirect-binding URL".to_string())?;
    String::from_utf8(bytes).map_err(|_| "decoded bytes are not UTF-8".into())
}

fn ok(b: bool) -> &'static str {
    if b {
        "✓"
    } else {
        "✗"
    }
}

/// An element's text for display, trimmed; `(none)` when absent.
fn text(n: Option<Node<'_, '_>>) -> String {
    n.map(|n| text_of(n).trim().to_string())
        .unwrap_or_else(|| "(none)".into())
}

fn attr<'a>(n: Option<Node<'a, '_>>, name: &str) -> &'a str {
    n.and_then(|n| n.attribute(name)).unwrap_or("(none)")
}

/// `CN=… · SHA-256 AB:CD… · valid until …` for a DER certificate.
pub fn describe_certificate(der: &[u8]) -> String {
    let Ok(cert) = X509::from_der(der) else {
        return "(unparsable certificate)".into();
    };
    let subject = crate::gateway::certs::subject_of(&cert);
    let fp = cert
        .digest(MessageDigest::sha256())
        .map(|d| {
            d.iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(":")
        })
        .unwrap_or_default();
    format!(
        "{subject} · SHA-256 {fp} · valid {} to {}",
        cert.not_before(),
        cert.not_after()
    )
}

fn signature_line(sig: Node<'_, '_>) -> String {
    let si = child(sig, NS_DSIG, "SignedInfo");
    let method = attr(
        si.and_then(|s| child(s, NS_DSIG, "SignatureMethod")),
        "Algorithm",
    );
    let reference = si.and_then(|s| child(s, NS_DSIG, "Reference"));
    let digest = attr(
        reference.and_then(|r| child(r, NS_DSIG, "DigestMethod")),
        "Algorithm",
    );
    format!(
        "{} over {} (digest {})",
        method.rsplit('#').next().unwrap_or(method),
        attr(reference, "URI"),
        digest.rsplit('#').next().unwrap_or(digest)
    )
}

/// Inspect a message for `app` at instant `at`; returns the report and whether the ACS
/// (or SLO endpoint) would accept it (store-dependent checks aside).
pub fn inspect(app: &App, raw: &str, at: DateTime<Utc>) -> Result<(String, bool), String> {
    match decode_input(raw)? {
        Input::Posted(xml) => inspect_response(app, &xml, at),
        Input::Redirect(query) => inspect_redirect(app, &query, at),
    }
}

fn inspect_response(app: &App, xml: &str, at: DateTime<Utc>) -> Result<(String, bool), String> {
    let trust = app.trust();
    let v = &trust.validator;
    let mut out = String::new();
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("not well-formed XML: {e}"))?;
    let root = doc.root_element();
    let _ = writeln!(
        out,
        "{}  ID={}  IssueInstant={}",
        root.tag_name().name(),
        attr(Some(root), "ID"),
        attr(Some(root), "IssueInstant")
    );
    if root.tag_name().name() != "Response" {
        return Err(format!(
            "a {} is not a SAMLResponse; give a Redirect-binding URL for logout messages, or use inspect-metadata",
            root.tag_name().name()
        ));
    }
    let _ = writeln!(out, "  Destination   {}", attr(Some(root), "Destination"));
    let _ = writeln!(out, "  InResponseTo  {}", attr(Some(root), "InResponseTo"));
    let _ = writeln!(
        out,
        "  Issuer        {}",
        text(child(root, NS_ASSERTION, "Issuer"))
    );
    let status = child(root, NS_PROTOCOL, "Status");
    let code = attr(
        status.and_then(|s| child(s, NS_PROTOCOL, "StatusCode")),
        "Value",
    );
    let _ = writeln!(out, "  Status        {code}");
    if let Some(m) = status.and_then(|s| child(s, NS_PROTOCOL, "StatusMessage")) {
        let _ = writeln!(out, "  StatusMessage {}", text(Some(m)));
    }
    for sig in root
        .children()
        .filter(|n| n.has_tag_name((NS_DSIG, "Signature")))
    {
        let _ = writeln!(out, "  Signature on the Response: {}", signature_line(sig));
    }

    // The assertion: plain, or decrypted with the SP key for display.
    let decrypted;
    let assertion_xml;
    let adoc;
    let assertion = if let Some(enc) = child(root, NS_ASSERTION, "EncryptedAssertion") {
        let _ = writeln!(out, "  EncryptedAssertion (Entra token encryption)");
        match app.sp_keys.as_ref() {
            None => {
                let _ = writeln!(
                    out,
                    "    cannot decrypt: this app has no sp.signing_key_file"
                );
                None
            }
            Some(keys) => match saml::encryption::decrypt_assertion(enc, keys.key.pkey()) {
                Ok(plain) => {
                    decrypted = plain;
                    assertion_xml = format!(
                        "<w xmlns:saml=\"{NS_ASSERTION}\" xmlns=\"{NS_ASSERTION}\">{decrypted}</w>"
                    );
                    adoc = roxmltree::Document::parse(&assertion_xml).ok();
                    adoc.as_ref()
                        .and_then(|d| d.root_element().first_element_child())
                }
                Err(e) => {
                    let _ = writeln!(out, "    cannot decrypt: {e}");
                    None
                }
            },
        }
    } else {
        child(root, NS_ASSERTION, "Assertion")
    };

    let mut facts = Vec::new();
    if let Some(a) = assertion {
        let subject = child(a, NS_ASSERTION, "Subject");
        let name_id = subject.and_then(|s| child(s, NS_ASSERTION, "NameID"));
        let scd = subject
            .and_then(|s| child(s, NS_ASSERTION, "SubjectConfirmation"))
            .and_then(|c| child(c, NS_ASSERTION, "SubjectConfirmationData"));
        let cond = child(a, NS_ASSERTION, "Conditions");
        let audiences: Vec<String> = cond
            .into_iter()
            .flat_map(|c| c.descendants())
            .filter(|n| n.has_tag_name((NS_ASSERTION, "Audience")))
            .map(|n| text(Some(n)))
            .collect();
        let authn = child(a, NS_ASSERTION, "AuthnStatement");
        let _ = writeln!(
            out,
            "  Assertion  ID={}  IssueInstant={}",
            attr(Some(a), "ID"),
            attr(Some(a), "IssueInstant")
        );
        let _ = writeln!(
            out,
            "    Issuer        {}",
            text(child(a, NS_ASSERTION, "Issuer"))
        );
        let _ = writeln!(
            out,
            "    NameID        {} ({})",
            text(name_id),
            attr(name_id, "Format")
        );
        let _ = writeln!(
            out,
            "    Confirmation  Recipient={} NotOnOrAfter={} InResponseTo={}",
            attr(scd, "Recipient"),
            attr(scd, "NotOnOrAfter"),
            attr(scd, "InResponseTo")
        );
        let _ = writeln!(
            out,
            "    Conditions    NotBefore={} NotOnOrAfter={} Audience={}",
            attr(cond, "NotBefore"),
            attr(cond, "NotOnOrAfter"),
            audiences.join(", ")
        );
        let _ = writeln!(
            out,
            "    AuthnStatement AuthnInstant={} SessionIndex={} SessionNotOnOrAfter={}",
            attr(authn, "AuthnInstant"),
            attr(authn, "SessionIndex"),
            attr(authn, "SessionNotOnOrAfter")
        );
        for at_node in a
            .descendants()
            .filter(|n| n.has_tag_name((NS_ASSERTION, "Attribute")))
        {
            let values: Vec<String> = at_node
                .children()
                .filter(|n| n.has_tag_name((NS_ASSERTION, "AttributeValue")))
                .map(|n| text(Some(n)))
                .collect();
            let _ = writeln!(
                out,
                "    Attribute     {} = {}",
                attr(Some(at_node), "Name"),
                values.join(" | ")
            );
        }
        for sig in a
            .children()
            .filter(|n| n.has_tag_name((NS_DSIG, "Signature")))
        {
            let _ = writeln!(
                out,
                "    Signature on the Assertion: {}",
                signature_line(sig)
            );
        }

        let skew = chrono::Duration::from_std(v.clock_skew).unwrap_or_default();
        let parse = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|d| d.with_timezone(&Utc))
        };
        let not_before = parse(attr(cond, "NotBefore"));
        let not_after = [attr(cond, "NotOnOrAfter"), attr(scd, "NotOnOrAfter")]
            .into_iter()
            .filter_map(parse)
            .min();
        let in_window = not_before.is_none_or(|nb| at + skew >= nb)
            && not_after.is_some_and(|na| at - skew < na);
        let issuer = text(child(a, NS_ASSERTION, "Issuer"));
        facts.push((
            issuer == trust.settings.entity_id,
            format!(
                "issuer: expected {}, found {issuer}",
                trust.settings.entity_id
            ),
        ));
        let dest = attr(Some(root), "Destination");
        facts.push((
            dest == "(none)" || dest == v.sp.acs_url,
            format!(
                "destination: expected {} (sp.acs_url), found {dest}",
                v.sp.acs_url
            ),
        ));
        let recipient = attr(scd, "Recipient");
        facts.push((
            recipient == v.sp.acs_url,
            format!("recipient: expected {}, found {recipient}", v.sp.acs_url),
        ));
        facts.push((
            audiences.contains(&v.sp.entity_id),
            format!(
                "audience: expected {} (sp.entity_id), found {}",
                v.sp.entity_id,
                audiences.join(", ")
            ),
        ));
        facts.push((
            in_window,
            format!(
                "time: {at} (±{}s) within NotBefore {} .. NotOnOrAfter {}",
                v.clock_skew.as_secs(),
                not_before
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| "-".into()),
                not_after
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| "-".into())
            ),
        ));
    }

    // Which configured certificate verifies it, each tried alone.
    let _ = writeln!(
        out,
        "\nIdP certificates trusted for app \"{}\" ({}):",
        app.name, trust.origin
    );
    let b64 = STANDARD.encode(xml);
    let mut verifier = None;
    for (i, cert) in trust.settings.signing_certs.iter().enumerate() {
        let mut one = v.clone();
        let verifies = one.set_signing_certs(vec![cert.clone()]).is_ok()
            && !matches!(
                one.validate(&b64, at),
                Err(SamlError::Signature)
                    | Err(SamlError::NoSigningCerts)
                    | Err(SamlError::SignatureReference)
            );
        if verifies && verifier.is_none() {
            verifier = Some(i);
        }
        let _ = writeln!(out, "  #{} {}", i + 1, describe_certificate(cert));
    }

    let _ = writeln!(out, "\nChecks (at {at}):");
    let _ = writeln!(
        out,
        "  {} status Success (found {code})",
        ok(code.ends_with(":Success"))
    );
    match verifier {
        Some(i) => {
            let _ = writeln!(out, "  ✓ signature verified by certificate #{}", i + 1);
        }
        None => {
            let _ = writeln!(out, "  ✗ signature: no trusted certificate verifies it (Entra: SAML Certificates > download the active one, or use the metadata)");
        }
    }
    for (pass, line) in &facts {
        let _ = writeln!(out, "  {} {line}", ok(*pass));
    }
    let _ = writeln!(out, "  · InResponseTo (a pending request of this gateway) and replay need the session store: not checked here");

    let verdict = v.validate(&b64, at);
    let accepted = verdict.is_ok();
    match verdict {
        Ok(va) => {
            let _ = writeln!(
                out,
                "\nResult: ACCEPTED by the ACS validation chain (NameID {}, {} attribute(s))",
                va.identity.name_id,
                va.identity.attributes.len()
            );
        }
        Err(e) => {
            let _ = writeln!(out, "\nResult: REFUSED ({}): {e}", e.reason());
        }
    }
    Ok((out, accepted))
}

fn inspect_redirect(app: &App, query: &str, at: DateTime<Utc>) -> Result<(String, bool), String> {
    let trust = app.trust();
    let q = parse_redirect_query(query).map_err(|e| e.to_string())?;
    let xml = q.xml().map_err(|e| e.to_string())?;
    let doc = roxmltree::Document::parse(&xml).map_err(|e| format!("not well-formed XML: {e}"))?;
    let root = doc.root_element();
    let kind = root.tag_name().name().to_string();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{kind} (Redirect binding, {})  ID={}  IssueInstant={}",
        q.param.name(),
        attr(Some(root), "ID"),
        attr(Some(root), "IssueInstant")
    );
    let _ = writeln!(out, "  Destination   {}", attr(Some(root), "Destination"));
    let _ = writeln!(
        out,
        "  Issuer        {}",
        text(child(root, NS_ASSERTION, "Issuer"))
    );
    if let Some(irt) = root.attribute("InResponseTo") {
        let _ = writeln!(out, "  InResponseTo  {irt}");
    }
    if let Some(n) = child(root, NS_ASSERTION, "NameID") {
        let _ = writeln!(out, "  NameID        {}", text(Some(n)));
    }
    for si in root
        .children()
        .filter(|n| n.has_tag_name((NS_PROTOCOL, "SessionIndex")))
    {
        let _ = writeln!(out, "  SessionIndex  {}", text(Some(si)));
    }
    if let Some(r) = q.relay_state() {
        let _ = writeln!(out, "  RelayState    {r}");
    }
    let sig = match q.verify(&trust.keys, trust.validator.allow_sha1) {
        Ok(()) => "✓ query signature verified by a trusted IdP certificate".to_string(),
        Err(SamlError::MessageNotSigned) if !app.require_signed_logout => {
            "· not signed (allowed: require_signed_logout = false)".to_string()
        }
        Err(e) => format!("✗ query signature: {e}"),
    };
    let _ = writeln!(out, "\nChecks (at {at}):\n  {sig}");
    let signature_ok = sig.starts_with('✓') || sig.starts_with('·');
    let accepted = match (q.param, app.slo_url.as_deref()) {
        (MessageParam::Request, _) if kind == "AuthnRequest" => {
            let _ = writeln!(out, "  · an AuthnRequest: what this gateway (or another SP) sends to the IdP; nothing to validate");
            signature_ok
        }
        (_, None) => {
            let _ = writeln!(
                out,
                "  ✗ this app has no sp.slo_url: logout messages are not accepted"
            );
            false
        }
        (param, Some(slo)) => {
            let checks = LogoutChecks {
                idp_entity_id: &trust.settings.entity_id,
                slo_url: slo,
                now: at,
                clock_skew: trust.validator.clock_skew,
            };
            let r = match param {
                MessageParam::Request => checks.logout_request(&xml).map(|_| ()),
                MessageParam::Response => checks.logout_response(&xml).map(|_| ()),
            };
            match &r {
                Ok(()) => {
                    let _ = writeln!(out, "  ✓ issuer, destination, age and status");
                }
                Err(e) => {
                    let _ = writeln!(out, "  ✗ {} ({})", e, e.reason());
                }
            }
            let _ = writeln!(
                out,
                "  · pending request / replay need the session store: not checked here"
            );
            signature_ok && r.is_ok()
        }
    };
    let _ = writeln!(
        out,
        "\nResult: {}",
        if accepted { "ACCEPTED" } else { "REFUSED" }
    );
    Ok((out, accepted))
}

/// Summary of a metadata document: entity ID, endpoints, every signing certificate, and
/// its own signature (verified when `signer` is given).
pub fn inspect_metadata(bytes: &[u8], signer: Option<&[u8]>) -> Result<(String, bool), String> {
    let mut out = String::new();
    let idp = IdpSettings::from_metadata(bytes).map_err(|e| e.to_string())?;
    let _ = writeln!(out, "entityID      {}", idp.entity_id);
    let _ = writeln!(out, "SSO (Redirect) {}", idp.sso_url);
    let _ = writeln!(
        out,
        "SLO (Redirect) {}",
        idp.slo_url.as_deref().unwrap_or("(none)")
    );
    let _ = writeln!(
        out,
        "signing certificates ({}), all trusted:",
        idp.signing_certs.len()
    );
    for (i, c) in idp.signing_certs.iter().enumerate() {
        let _ = writeln!(out, "  #{} {}", i + 1, describe_certificate(c));
    }
    if let Err(e) = public_keys(&idp.signing_certs) {
        let _ = writeln!(out, "✗ {e}");
        return Ok((out, false));
    }
    let text = String::from_utf8_lossy(bytes);
    let signed = text.contains(":Signature") || text.contains("<Signature");
    let accepted = match signer {
        None => {
            let _ = writeln!(
                out,
                "metadata signature: {}",
                if signed {
                    "present (not checked: no --signer given)"
                } else {
                    "none"
                }
            );
            true
        }
        Some(cert) => {
            let der = saml::load_certificate(cert).map_err(|e| format!("--signer: {e}"))?;
            match IdpSettings::from_signed_metadata(bytes, std::slice::from_ref(&der)) {
                Ok(_) => {
                    let _ = writeln!(
                        out,
                        "✓ metadata signature verified by {}",
                        describe_certificate(&der)
                    );
                    true
                }
                Err(e) => {
                    let _ = writeln!(out, "✗ metadata signature: {e}");
                    false
                }
            }
        }
    };
    Ok((out, accepted))
}
