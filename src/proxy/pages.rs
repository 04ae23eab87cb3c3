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
