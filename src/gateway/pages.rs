//! The HTML pages the gateway itself answers with. They name what happened and give a
//! reference ID that matches the audit log line; they never echo assertion contents,
//! user attributes or group lists.

use bytes::Bytes;

fn escape(s: &str) -> String {
    html_escape::encode_text(s).into_owned()
}

/// A complete small HTML page.
pub fn render(title: &str, message: &str, reference: &str) -> Bytes {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{t}</title><style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}}\
h1{{font-size:1.4rem}}code{{background:#f3f3f3;padding:.1rem .3rem}}</style></head>\
<body><h1>{t}</h1><p>{m}</p><p><small>Reference: <code>{r}</code> &middot; ssogate</small></p></body></html>\n",
        t = escape(title),
        m = escape(message),
        r = escape(reference),
    );
    Bytes::from(html)
}

/// The PostReplay page: a form that posts the kept fields to `action` at once (a button
/// without JavaScript). Every name and value is HTML-escaped.
pub fn replay_form(action: &str, urlencoded: &str, reference: &str) -> Bytes {
    let attr = |s: &str| html_escape::encode_double_quoted_attribute(s).into_owned();
    let mut inputs = String::new();
    for (k, v) in url::form_urlencoded::parse(urlencoded.as_bytes()) {
        inputs.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            attr(&k),
            attr(&v)
        ));
    }
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Continuing</title></head>\
<body onload=\"document.forms[0].submit()\"><form method=\"post\" action=\"{a}\" accept-charset=\"utf-8\">{inputs}\
<noscript><p>You are signed in again. Press Continue to send your form.</p><button type=\"submit\">Continue</button></noscript>\
</form><p><small>Reference: <code>{r}</code> &middot; ssogate</small></p></body></html>\n",
        a = attr(action),
        r = escape(reference),
    );
    Bytes::from(html)
}

/// `GET /saml/logout`: a button that signs out by a same-origin POST (a GET never
/// changes state, so a cross-site link cannot sign anyone out).
pub fn logout_confirm(reference: &str) -> Bytes {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Sign out</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}}h1{{font-size:1.4rem}}</style></head>\
<body><h1>Sign out</h1><p>Sign out of this application?</p>\
<form method=\"post\" action=\"/saml/logout\"><button type=\"submit\" id=\"sign-out\">Sign out</button></form>\
<p><small>Reference: <code>{r}</code> &middot; ssogate</small></p></body></html>\n",
        r = escape(reference),
    );
    Bytes::from(html)
}

#[cfg(test)]
mod tests {
    #[test]
    fn page_escapes_everything() {
        let p = super::render("<t>", "<script>x</script>", "r&1");
        let s = std::str::from_utf8(&p).unwrap();
        assert!(!s.contains("<script>"));
        assert!(s.contains("&lt;script&gt;"));
        assert!(s.contains("r&amp;1"));
    }
}
