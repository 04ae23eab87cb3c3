//! XML helpers shared by the SAML module: pre-parse screening (DTD, encoding,
//! nesting depth), a hardened roxmltree parse, escaping and small accessors.
//!
//! We never panic on hostile input: every scan is bounds-checked and every
//! failure is a `SamlError`.

use super::SamlError;
use chrono::{DateTime, Utc};
use roxmltree::{Document, Node, ParsingOptions};

pub(crate) const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub(crate) const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub(crate) const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";

pub(crate) const BINDING_HTTP_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
pub(crate) const BINDING_HTTP_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";

/// Deepest element nesting accepted. SAML responses and metadata are about 10 deep; the
/// limit keeps the recursive parsers (roxmltree, libxml2, samael) far from stack exhaustion.
pub(crate) const MAX_DEPTH: usize = 64;
/// Most nodes accepted in one document.
const MAX_NODES: u32 = 200_000;

/// Strip a UTF-8 byte-order mark.
pub(crate) fn strip_bom(s: &str) -> &str {
    s.strip_prefix('\u{feff}').unwrap_or(s)
}

/// Screens a document before any parser sees it: no DTD / entity declarations, UTF-8 only
/// (an `encoding=` other than UTF-8 would make libxml2 and roxmltree read different
/// documents), and bounded nesting depth.
pub(crate) fn screen(xml: &str) -> Result<(), SamlError> {
    let bytes = xml.as_bytes();
    if has_declaration(bytes, b"doctype") || has_declaration(bytes, b"entity") {
        return Err(SamlError::XmlDtd);
    }
    check_declared_encoding(xml)?;
    if nesting_exceeds(bytes, MAX_DEPTH) {
        return Err(SamlError::XmlTooDeep);
    }
    Ok(())
}

/// Parse with DTDs refused (roxmltree's default, set explicitly) and a node limit.
pub(crate) fn parse(xml: &str) -> Result<Document<'_>, SamlError> {
    let opts = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
    };
    Document::parse_with_options(xml, opts).map_err(|e| match e {
        roxmltree::Error::DtdDetected => SamlError::XmlDtd,
        other => {
            let pos = other.pos();
            SamlError::XmlParse {
                line: pos.row,
                column: pos.col,
            }
        }
    })
}

/// Does `hay` hold `<!` followed by `word` (lower case), in any case? `<!` is rare in a
/// SAML document, so this jumps from one to the next.
fn has_declaration(hay: &[u8], word: &[u8]) -> bool {
    memchr::memmem::find_iter(hay, b"<!").any(|at| {
        hay.get(at + 2..at + 2 + word.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
    })
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    memchr::memmem::find(hay.get(from..)?, needle).map(|p| p + from)
}

fn check_declared_encoding(xml: &str) -> Result<(), SamlError> {
    let Some(rest) = xml.trim_start().strip_prefix("<?xml") else {
        return Ok(());
    };
    let decl = rest.split("?>").next().unwrap_or("");
    let Some(idx) = decl.find("encoding") else {
        return Ok(());
    };
    let after = decl[idx + "encoding".len()..].trim_start();
    let after = after.strip_prefix('=').unwrap_or(after).trim_start();
    let value: String = after
        .chars()
        .skip(1)
        .take_while(|c| *c != '"' && *c != '\'')
        .collect();
    if value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf8") {
        Ok(())
    } else {
        Err(SamlError::BadEncoding)
    }
}

/// A small tokenizer that tracks element depth (comments, CDATA, PIs and quoted attribute
/// values are skipped). Unterminated constructs stop the scan: the parser reports them.
fn nesting_exceeds(b: &[u8], limit: usize) -> bool {
    let mut depth: usize = 0;
    let mut i = 0;
    while let Some(lt) = b
        .get(i..)
        .and_then(|r| memchr::memchr(b'<', r))
        .map(|p| p + i)
    {
        let rest = &b[lt..];
        let end = if rest.starts_with(b"<!--") {
            find(b, b"-->", lt + 4).map(|p| p + 3)
        } else if rest.starts_with(b"<![CDATA[") {
            find(b, b"]]>", lt + 9).map(|p| p + 3)
        } else if rest.starts_with(b"<?") {
            find(b, b"?>", lt + 2).map(|p| p + 2)
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            find(b, b">", lt + 2).map(|p| p + 1)
        } else if rest.starts_with(b"<!") {
            find(b, b">", lt + 2).map(|p| p + 1)
        } else {
            // start tag: find its '>' outside quotes
            let mut j = lt + 1;
            let mut close = None;
            while let Some(k) = b
                .get(j..)
                .and_then(|r| memchr::memchr3(b'>', b'"', b'\'', r))
            {
                let at = j + k;
                match b[at] {
                    b'>' => {
                        close = Some(at);
                        break;
                    }
                    quote => match find(b, &[quote], at + 1) {
                        Some(end) => j = end + 1,
                        None => break,
                    },
                }
            }
            match close {
                Some(j) => {
                    let self_closing = j > 0 && b.get(j - 1) == Some(&b'/');
                    if !self_closing {
                        depth += 1;
                        if depth > limit {
                            return true;
                        }
                    }
                    Some(j + 1)
                }
                None => None,
            }
        };
        match end {
            Some(e) => i = e,
            None => return false,
        }
    }
    false
}

/// Escape for use inside a double-quoted attribute value or element text.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

/// True when `node` is the element `{ns}local`.
pub(crate) fn is(node: Node<'_, '_>, ns: &str, local: &str) -> bool {
    node.is_element() && node.tag_name().name() == local && node.tag_name().namespace() == Some(ns)
}

/// Element children `{ns}local` of `node`.
pub(crate) fn children<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'static str,
    local: &'static str,
) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(move |c| is(*c, ns, local))
}

/// First element child `{ns}local` of `node`.
pub(crate) fn child<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'static str,
    local: &'static str,
) -> Option<Node<'a, 'i>> {
    children(node, ns, local).next()
}

/// All text of an element, every text/CDATA descendant concatenated in document order.
/// Comments and PIs are skipped, never used as terminators: `a<!---->b` reads `ab`.
pub(crate) fn text_of(node: Node<'_, '_>) -> String {
    node.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect()
}

/// xs:dateTime as SAML uses it (UTC, `Z`, optional fraction).
pub(crate) fn parse_instant(s: &str) -> Result<DateTime<Utc>, SamlError> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| SamlError::Malformed("timestamp"))
}

/// Optional timestamp attribute.
pub(crate) fn instant_attr(
    node: Node<'_, '_>,
    name: &str,
) -> Result<Option<DateTime<Utc>>, SamlError> {
    node.attribute(name).map(parse_instant).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screen_refuses_dtd_any_case() {
        assert_eq!(screen("<!DOCTYPE x><x/>"), Err(SamlError::XmlDtd));
        assert_eq!(screen("<!doctype x><x/>"), Err(SamlError::XmlDtd));
        assert_eq!(screen("<x><!ENTITY a 'b'></x>"), Err(SamlError::XmlDtd));
        // Anywhere, in any case: in a comment, a quoted value, after other `<!`.
        assert_eq!(
            screen("<x a='<!DocType'><!-- --></x>"),
            Err(SamlError::XmlDtd)
        );
        assert_eq!(screen("<x><!-- <!eNtItY --></x>"), Err(SamlError::XmlDtd));
        assert!(screen("<x><!-- <!doc --><![CDATA[<!entit]]></x>").is_ok());
        assert!(screen("<x/>").is_ok());
    }

    #[test]
    fn roxmltree_refuses_dtd_by_itself() {
        assert_eq!(
            parse("<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>").err(),
            Some(SamlError::XmlDtd)
        );
    }

    #[test]
    fn encoding_must_be_utf8() {
        assert!(screen("<?xml version=\"1.0\" encoding=\"utf-8\"?><x/>").is_ok());
        assert!(screen("<?xml version='1.0' encoding = 'UTF-8'?><x/>").is_ok());
        assert!(screen("<?xml version=\"1.0\"?><x/>").is_ok());
        assert_eq!(
            screen("<?xml version=\"1.0\" encoding=\"UTF-16\"?><x/>"),
            Err(SamlError::BadEncoding)
        );
    }

    #[test]
    fn depth_counts_elements_not_quoted_or_commented_text() {
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert_eq!(screen(&deep), Err(SamlError::XmlTooDeep));
        let flat = "<a><b x=\"<<<>\"/><!-- <c><c><c> --><![CDATA[<d>]]></a>".repeat(100);
        assert!(screen(&format!("<r>{flat}</r>")).is_ok());
        // "/>" inside a quoted value does not hide depth
        let sneaky = "<a x=\"/>\">".repeat(MAX_DEPTH + 1);
        assert_eq!(screen(&sneaky), Err(SamlError::XmlTooDeep));
        // truncated input does not panic
        assert!(screen("<a x=\"").is_ok());
        assert!(screen("<").is_ok());
    }

    #[test]
    fn text_of_skips_comments() {
        let doc = parse("<n>user@evil.com<!---->.example.com</n>").unwrap();
        assert_eq!(text_of(doc.root_element()), "user@evil.com.example.com");
    }

    #[test]
    fn escape_attribute_values() {
        assert_eq!(escape("a\"<&>'"), "a&quot;&lt;&amp;&gt;&apos;");
    }
}
