//! Single Logout messages (SAML core §3.7): the LogoutRequest and LogoutResponse we send,
//! and checks on the ones we receive. Transport is the Redirect binding (`redirect`),
//! the only one Entra supports for logout; its query signature is checked there.
//!
//! We never panic on hostile input: the XML is screened and parsed like a SAMLResponse
//! and every failed check is a [`SamlError`]. Messages carry no assertion contents.

use super::xml::{self, child, children, instant_attr, is, text_of, NS_ASSERTION, NS_PROTOCOL};
use super::SamlError;
use chrono::{DateTime, SecondsFormat, Utc};
use std::time::Duration;

pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
pub const STATUS_RESPONDER: &str = "urn:oasis:names:tc:SAML:2.0:status:Responder";
pub const STATUS_REQUESTER: &str = "urn:oasis:names:tc:SAML:2.0:status:Requester";
/// Oldest IssueInstant accepted on an incoming logout message (besides the skew).
const MAX_MESSAGE_AGE: Duration = Duration::from_secs(10 * 60);

/// What a LogoutRequest we send says.
#[derive(Debug, Clone)]
pub struct LogoutRequestSpec<'a> {
    pub id: &'a str,
    /// Our entity ID.
    pub issuer: &'a str,
    /// The IdP's SLO URL.
    pub destination: &'a str,
    pub name_id: &'a str,
    pub name_id_format: Option<&'a str>,
    pub session_index: Option<&'a str>,
    pub now: DateTime<Utc>,
}

pub fn logout_request_xml(spec: &LogoutRequestSpec<'_>) -> String {
    let format = spec
        .name_id_format
        .map(|f| format!(" Format=\"{}\"", xml::escape(f)))
        .unwrap_or_default();
    let session_index = spec
        .session_index
        .map(|s| {
            format!(
                "<samlp:SessionIndex>{}</samlp:SessionIndex>",
                xml::escape(s)
            )
        })
        .unwrap_or_default();
    format!(
        concat!(
            "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ",
            "xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ",
            "ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{instant}\" Destination=\"{dest}\">",
            "<saml:Issuer>{issuer}</saml:Issuer>",
            "<saml:NameID{format}>{name_id}</saml:NameID>{session_index}",
            "</samlp:LogoutRequest>"
        ),
        id = xml::escape(spec.id),
        instant = spec.now.to_rfc3339_opts(SecondsFormat::Millis, true),
        dest = xml::escape(spec.destination),
        issuer = xml::escape(spec.issuer),
        format = format,
        name_id = xml::escape(spec.name_id),
        session_index = session_index,
    )
}

/// What a LogoutResponse we send says.
#[derive(Debug, Clone)]
pub struct LogoutResponseSpec<'a> {
    pub id: &'a str,
    pub issuer: &'a str,
    pub destination: &'a str,
    pub in_response_to: &'a str,
    /// Top-level status code URN, e.g. [`STATUS_SUCCESS`].
    pub status: &'a str,
    pub now: DateTime<Utc>,
}

pub fn logout_response_xml(spec: &LogoutResponseSpec<'_>) -> String {
    format!(
        concat!(
            "<samlp:LogoutResponse xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ",
            "xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ",
            "ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{instant}\" Destination=\"{dest}\" ",
            "InResponseTo=\"{irt}\">",
            "<saml:Issuer>{issuer}</saml:Issuer>",
            "<samlp:Status><samlp:StatusCode Value=\"{status}\"/></samlp:Status>",
            "</samlp:LogoutResponse>"
        ),
        id = xml::escape(spec.id),
        instant = spec.now.to_rfc3339_opts(SecondsFormat::Millis, true),
        dest = xml::escape(spec.destination),
        irt = xml::escape(spec.in_response_to),
        issuer = xml::escape(spec.issuer),
        status = xml::escape(spec.status),
    )
}

/// A LogoutRequest from the IdP, checked.
#[derive(Clone, PartialEq, Eq)]
pub struct IncomingLogoutRequest {
    pub id: String,
    pub name_id: String,
    /// Empty: every session of the user ends.
    pub session_indexes: Vec<String>,
}

impl std::fmt::Debug for IncomingLogoutRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingLogoutRequest")
            .field("id", &self.id)
            .field("name_id", &"<redacted>")
            .field("session_indexes", &self.session_indexes.len())
            .finish()
    }
}

/// A LogoutResponse from the IdP, checked (Status is Success).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingLogoutResponse {
    pub in_response_to: String,
}

/// What an incoming logout message must match.
#[derive(Debug, Clone, Copy)]
pub struct LogoutChecks<'a> {
    pub idp_entity_id: &'a str,
    /// Our SLO URL: a Destination, when present, must be it.
    pub slo_url: &'a str,
    pub now: DateTime<Utc>,
    pub clock_skew: Duration,
}

impl LogoutChecks<'_> {
    fn envelope<'a, 'i>(
        &self,
        doc: &'a roxmltree::Document<'i>,
        local: &str,
    ) -> Result<roxmltree::Node<'a, 'i>, SamlError> {
        let root = doc.root_element();
        if !is(root, NS_PROTOCOL, local) {
            return Err(SamlError::Malformed("unexpected logout message type"));
        }
        if root.attribute("Version") != Some("2.0") {
            return Err(SamlError::Version);
        }
        let issuer = child(root, NS_ASSERTION, "Issuer").ok_or(SamlError::Issuer)?;
        if text_of(issuer).trim() != self.idp_entity_id {
            return Err(SamlError::Issuer);
        }
        if let Some(dest) = root.attribute("Destination") {
            if dest != self.slo_url {
                return Err(SamlError::Destination);
            }
        }
        let skew = chrono::Duration::from_std(self.clock_skew)
            .map_err(|_| SamlError::Malformed("clock skew"))?;
        let max_age = chrono::Duration::from_std(MAX_MESSAGE_AGE)
            .map_err(|_| SamlError::Malformed("max age"))?;
        let issued =
            instant_attr(root, "IssueInstant")?.ok_or(SamlError::Malformed("IssueInstant"))?;
        if issued > self.now + skew {
            return Err(SamlError::NotYetValid);
        }
        if issued < self.now - skew - max_age {
            return Err(SamlError::Expired);
        }
        Ok(root)
    }

    /// Check a LogoutRequest (the query signature was checked by the caller).
    pub fn logout_request(&self, xml_text: &str) -> Result<IncomingLogoutRequest, SamlError> {
        let text = xml::strip_bom(xml_text);
        xml::screen(text)?;
        let doc = xml::parse(text)?;
        let root = self.envelope(&doc, "LogoutRequest")?;
        if let Some(noa) = instant_attr(root, "NotOnOrAfter")? {
            let skew = chrono::Duration::from_std(self.clock_skew)
                .map_err(|_| SamlError::Malformed("clock skew"))?;
            if self.now - skew >= noa {
                return Err(SamlError::Expired);
            }
        }
        let id = root
            .attribute("ID")
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or(SamlError::Malformed("LogoutRequest ID"))?
            .to_string();
        if child(root, NS_ASSERTION, "EncryptedID").is_some() {
            return Err(SamlError::Malformed("EncryptedID is not supported"));
        }
        let name_id = child(root, NS_ASSERTION, "NameID")
            .map(text_of)
            .filter(|n| !n.trim().is_empty())
            .ok_or(SamlError::MissingNameId)?;
        let session_indexes = children(root, NS_PROTOCOL, "SessionIndex")
            .map(|s| text_of(s).trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        Ok(IncomingLogoutRequest {
            id,
            name_id,
            session_indexes,
        })
    }

    /// Check a LogoutResponse: issuer, destination, time, and a Success status.
    pub fn logout_response(&self, xml_text: &str) -> Result<IncomingLogoutResponse, SamlError> {
        let text = xml::strip_bom(xml_text);
        xml::screen(text)?;
        let doc = xml::parse(text)?;
        let root = self.envelope(&doc, "LogoutResponse")?;
        let in_response_to = root
            .attribute("InResponseTo")
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or(SamlError::UnknownLogoutRequest)?
            .to_string();
        super::validate::check_status(root)?;
        Ok(IncomingLogoutResponse { in_response_to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn checks() -> LogoutChecks<'static> {
        LogoutChecks {
            idp_entity_id: "https://idp.example.com/",
            slo_url: "https://app.example.com/saml/slo",
            now: now(),
            clock_skew: Duration::from_secs(180),
        }
    }

    fn request(session_index: Option<&str>) -> String {
        logout_request_xml(&LogoutRequestSpec {
            id: "_lr1",
            issuer: "https://idp.example.com/",
            destination: "https://app.example.com/saml/slo",
            name_id: "alice@example.com",
            name_id_format: Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"),
            session_index,
            now: now(),
        })
    }

    #[test]
    fn logout_request_round_trip() {
        let r = checks().logout_request(&request(Some("_s1"))).unwrap();
        assert_eq!(r.id, "_lr1");
        assert_eq!(r.name_id, "alice@example.com");
        assert_eq!(r.session_indexes, vec!["_s1".to_string()]);
        let all = checks().logout_request(&request(None)).unwrap();
        assert!(all.session_indexes.is_empty());
    }

    #[test]
    fn logout_request_checks_fail_closed() {
        let x = request(None);
        let wrong_issuer = x.replace("https://idp.example.com/<", "https://evil/<");
        assert_eq!(
            checks().logout_request(&wrong_issuer),
            Err(SamlError::Issuer)
        );
        let wrong_dest = x.replace("app.example.com/saml/slo", "other.example.com/slo");
        assert_eq!(
            checks().logout_request(&wrong_dest),
            Err(SamlError::Destination)
        );
        let old = x.replace("2024-05-01T12:00", "2024-05-01T11:00");
        assert_eq!(checks().logout_request(&old), Err(SamlError::Expired));
        let future = x.replace("2024-05-01T12:00", "2024-05-01T13:00");
        assert_eq!(
            checks().logout_request(&future),
            Err(SamlError::NotYetValid)
        );
        let dtd = format!("<!DOCTYPE x [<!ENTITY a \"b\">]>{x}");
        assert_eq!(checks().logout_request(&dtd), Err(SamlError::XmlDtd));
        let no_name = x.replace("alice@example.com", " ");
        assert_eq!(
            checks().logout_request(&no_name),
            Err(SamlError::MissingNameId)
        );
        let resp = logout_response_xml(&LogoutResponseSpec {
            id: "_x",
            issuer: "https://idp.example.com/",
            destination: "https://app.example.com/saml/slo",
            in_response_to: "_lr0",
            status: STATUS_SUCCESS,
            now: now(),
        });
        assert!(checks().logout_request(&resp).is_err());
        assert_eq!(
            checks().logout_response(&resp).unwrap().in_response_to,
            "_lr0"
        );
        let failed = resp.replace(STATUS_SUCCESS, STATUS_RESPONDER);
        assert_eq!(
            checks().logout_response(&failed).unwrap_err().reason(),
            "status"
        );
    }
}
