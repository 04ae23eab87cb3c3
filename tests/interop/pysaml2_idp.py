"""A real, independent SAML 2.0 IdP for ssogate's interop tests, built on pysaml2 (PyPI)
with xmlsec1 doing every signature and encryption. NOT a mock of ours: it parses and
verifies what ssogate sends with pysaml2's own code, and issues what pysaml2 issues.

The test drives it like a browser would:

  GET  /sso/redirect?SAMLRequest=..&RelayState=..&SigAlg=..&Signature=..&user=..&mode=..&encrypt=..
       verifies the (signed) AuthnRequest, answers an HTML form posting a SAMLResponse to the
       ACS (mode: assertion | response | both; encrypt: none | aes256-cbc | 3des)
  GET  /idp-initiated?user=..&relay=..&mode=..    an unsolicited response (My Apps style)
  GET  /slo/redirect?SAMLRequest=..               SP-initiated logout: verifies the request,
       302 to the SP's SLO URL with a signed LogoutResponse
  GET  /start-logout?user=..&session_index=..     IdP-initiated logout: 302 to the SP's SLO
       URL with a signed LogoutRequest
  GET  /slo/redirect?SAMLResponse=..              the SP's answer: verified, 200 "logout-ok"
  POST /sp-metadata                               the SP's metadata (from ssogate)

Loopback only. Usage: pysaml2_idp.py PORT WORKDIR
"""

import html
import json
import os
import sys
import functools
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import saml2
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor
from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID, NAME_FORMAT_URI
from saml2.server import Server
from saml2 import entity as saml2_entity
from saml2 import sigver

PORT = int(sys.argv[1])
WORK = sys.argv[2]
BASE = f"http://127.0.0.1:{PORT}"
ENTITY = f"{BASE}/idp"

# pysaml2 encrypts with 3DES-CBC unless told otherwise (it has no setting for it); the
# tests choose the content algorithm per response, through pysaml2's own parameter.
_original_pre_encryption_part = sigver.pre_encryption_part
CONTENT_ALGORITHMS = {
    # name: (xmlenc algorithm, xmlsec1 session key)
    "aes256-cbc": ("http://www.w3.org/2001/04/xmlenc#aes256-cbc", "aes-256"),
    "aes128-cbc": ("http://www.w3.org/2001/04/xmlenc#aes128-cbc", "aes-128"),
    "3des": ("http://www.w3.org/2001/04/xmlenc#tripledes-cbc", "des-192"),
}
SESSION_KEY = {"type": "des-192"}


def use_content_algorithm(name):
    algorithm, session_key = CONTENT_ALGORITHMS[name]
    saml2_entity.pre_encryption_part = functools.partial(
        _original_pre_encryption_part, msg_enc=algorithm
    )
    SESSION_KEY["type"] = session_key


CONFIG = {
    "entityid": ENTITY,
    "service": {
        "idp": {
            "endpoints": {
                "single_sign_on_service": [(f"{BASE}/sso/redirect", BINDING_HTTP_REDIRECT)],
                "single_logout_service": [(f"{BASE}/slo/redirect", BINDING_HTTP_REDIRECT)],
            },
            "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
            "want_authn_requests_signed": True,
            "policy": {
                "default": {
                    "lifetime": {"minutes": 15},
                    "attribute_restrictions": None,
                    "name_form": NAME_FORMAT_URI,
                }
            },
        }
    },
    "key_file": os.path.join(WORK, "idp-key.pem"),
    "cert_file": os.path.join(WORK, "idp-cert.pem"),
    "xmlsec_binary": "/usr/bin/xmlsec1",
    "metadata": {},
    "accepted_time_diff": 60,
}

config = IdPConfig()
config.load(CONFIG)
server = Server(config=config)
_original_encrypt_assertion = server.sec.encrypt_assertion


def encrypt_assertion(statement, enc_key, template, key_type="des-192", node_xpath=None):
    return _original_encrypt_assertion(
        statement, enc_key, template, key_type=SESSION_KEY["type"], node_xpath=node_xpath
    )


server.sec.encrypt_assertion = encrypt_assertion
SHA256 = {
    "sign_alg": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "digest_alg": "http://www.w3.org/2001/04/xmlenc#sha256",
}
with open(os.path.join(WORK, "idp-metadata.xml"), "w") as f:
    f.write(str(entity_descriptor(config)))

SP = {"entity_id": None}  # the last SP whose metadata was loaded
# name_id -> list of session indexes handed out (for IdP-initiated logout)
SESSIONS = {}


def form_page(http_args):
    """pysaml2's own auto-post form."""
    body = http_args["data"]
    return body.encode() if isinstance(body, str) else body


def authn_response(user, in_response_to, mode, encrypt, destination, sp_entity_id, q_sha1=False):
    sign_assertion = mode in ("assertion", "both")
    sign_response = mode in ("response", "both")
    name_id = NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=user)
    identity = {
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": [user],
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname": ["Zoë"],
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups": [
            "e7f3c0ba-0000-4000-8000-000000000001"
        ],
    }
    kwargs = {}
    if encrypt != "none":
        use_content_algorithm(encrypt)
        kwargs["encrypt_assertion"] = True
        kwargs["encrypt_assertion_self_contained"] = True
    resp = server.create_authn_response(
        identity,
        in_response_to,
        destination,
        sp_entity_id,
        name_id=name_id,
        authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password"},
        sign_assertion=sign_assertion,
        sign_response=sign_response,
        **SHA256 if q_sha1 is False else {},
        **kwargs,
    )
    # The session index pysaml2 put in the AuthnStatement, for logout later.
    text = str(resp)
    marker = 'SessionIndex="'
    if marker in text:
        SESSIONS.setdefault(user, []).append(text.split(marker, 1)[1].split('"', 1)[0])
    return text


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("pysaml2-idp: " + (fmt % args) + "\n")

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def fail(self, e):
        sys.stderr.write(f"pysaml2-idp error: {e!r}\n")
        self.reply(400, f"{type(e).__name__}: {e}".encode())

    def do_POST(self):
        if self.path == "/sp-metadata":
            xml = self.rfile.read(int(self.headers["content-length"])).decode()
            server.metadata.load("inline", xml)
            SP["entity_id"] = xml.split('entityID="', 1)[1].split('"', 1)[0]
            return self.reply(200, b"ok")
        self.reply(404)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        try:
            if url.path == "/sso/redirect":
                return self.sso(q)
            if url.path == "/idp-initiated":
                sp = q.get("sp", SP["entity_id"])
                acs = server.metadata.assertion_consumer_service(sp, BINDING_HTTP_POST)[0]["location"]
                xml = authn_response(q["user"], None, q.get("mode", "assertion"), q.get("encrypt", "none"), acs, sp)
                args = server.apply_binding(BINDING_HTTP_POST, xml, acs, q.get("relay", ""), response=True)
                return self.reply(200, form_page(args), [("content-type", "text/html")])
            if url.path == "/slo/redirect" and "SAMLRequest" in q:
                return self.sp_logout(q)
            if url.path == "/slo/redirect" and "SAMLResponse" in q:
                resp = server.parse_logout_request_response(q["SAMLResponse"], BINDING_HTTP_REDIRECT)
                ok = resp is not None and resp.status_ok()
                return self.reply(200 if ok else 400, b"logout-ok" if ok else b"logout-failed")
            if url.path == "/start-logout":
                return self.start_logout(q)
            return self.reply(404)
        except Exception as e:  # noqa: BLE001 - report every failure to the test
            return self.fail(e)

    def sso(self, q):
        req = server.parse_authn_request(
            q["SAMLRequest"],
            BINDING_HTTP_REDIRECT,
            relay_state=q.get("RelayState"),
            sigalg=q.get("SigAlg"),
            signature=q.get("Signature"),
        )
        if req is None:
            raise ValueError("AuthnRequest not accepted")
        message = req.message
        acs = message.assertion_consumer_service_url
        sp = message.issuer.text
        xml = authn_response(q["user"], message.id, q.get("mode", "assertion"), q.get("encrypt", "none"), acs, sp)
        args = server.apply_binding(BINDING_HTTP_POST, xml, acs, q.get("RelayState", ""), response=True)
        return self.reply(200, form_page(args), [("content-type", "text/html")])

    def sp_logout(self, q):
        req = server.parse_logout_request(
            q["SAMLRequest"],
            BINDING_HTTP_REDIRECT,
            relay_state=q.get("RelayState"),
            sigalg=q.get("SigAlg"),
            signature=q.get("Signature"),
        )
        if req is None:
            raise ValueError("LogoutRequest not accepted")
        msg = req.message
        slo = server.metadata.single_logout_service(msg.issuer.text, BINDING_HTTP_REDIRECT, "spsso")[0]["location"]
        resp = server.create_logout_response(msg, [BINDING_HTTP_REDIRECT], sign=False)
        args = server.apply_binding(
            BINDING_HTTP_REDIRECT, str(resp), slo, q.get("RelayState", ""), response=True, sign=True,
            sigalg="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        )
        location = dict(args["headers"])["Location"]
        body = json.dumps(
            {"name_id": msg.name_id.text, "session_index": [s.text for s in msg.session_index]}
        ).encode()
        return self.reply(302, body, [("location", location)])

    def start_logout(self, q):
        sp = q.get("sp", SP["entity_id"])
        slo = server.metadata.single_logout_service(sp, BINDING_HTTP_REDIRECT, "spsso")[0]["location"]
        name_id = NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=q["user"])
        kwargs = {}
        if q.get("session_index"):
            kwargs["session_indexes"] = [q["session_index"]]
        req_id, req = server.create_logout_request(
            slo, sp, name_id=name_id, sign=False, **kwargs
        )
        args = server.apply_binding(
            BINDING_HTTP_REDIRECT, str(req), slo, "", sign=True,
            sigalg="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        )
        location = dict(args["headers"])["Location"]
        return self.reply(302, req_id.encode(), [("location", location)])


if __name__ == "__main__":
    httpd = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    with open(os.path.join(WORK, "idp-ready"), "w") as f:
        f.write(json.dumps({"sessions": "/start-logout", "saml2": saml2.__version__ if hasattr(saml2, "__version__") else "?"}))
    httpd.serve_forever()
