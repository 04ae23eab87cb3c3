#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/seeds/<target>/ from the repository's real inputs:
the Entra fixtures (tests/fixtures/entra), the attacks of tests/saml_attacks.rs and
tests/request_boundary.rs, the SCIM requests of tests/scim*.rs, config/*.toml.

Deterministic (no clock, no randomness): run it again after changing it and commit the
result. python3 fuzz/make_seeds.py
"""

import base64
import pathlib
import re
import shutil
import urllib.parse
import zlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"
ENTRA = ROOT / "tests" / "fixtures" / "entra"

RESPONSE = (ENTRA / "response-assertion-signed.xml").read_text()
CERT_PEM = (ENTRA / "signing-cert.pem").read_bytes()
METADATA = (ENTRA / "tenant-federation-metadata.xml").read_bytes()

ENTRA_SP = "https://devpg.tercen.com/_service/sso/auth/saml"
ENTRA_IDP = "https://sts.windows.net/5b5c94c6-14cf-42da-85bc-4e08722b253b/"
NAME_ID = "test@alexandremaurelgmail.onmicrosoft.com"
EVIL = "admin@alexandremaurelgmail.onmicrosoft.com"
SCIM_TOKEN = "fuzz-scim-token-3b1f9d2c7a6e4058b1c2d3e4f5a69788"


def put(target, name, data):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def deflate_b64(xml):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return b64(c.compress(xml.encode()) + c.flush())


def q(s):
    return urllib.parse.quote(s, safe="-._~")


def span(x, open_, close):
    s = x.index(open_)
    e = x.index(close, s) + len(close)
    return s, e


# ---------------------------------------------------------------- saml_response
def saml_response():
    t = "saml_response"
    x = RESPONSE
    put(t, "entra-response.xml", x)
    put(t, "entra-form-body", f"SAMLResponse={q(b64(x))}&RelayState=%2Fwiki%2Fpage")
    wrapped = "\r\n".join(re.findall(".{1,76}", b64(x)))
    put(t, "entra-base64-lines", wrapped)
    put(t, "entra-bom.xml", "\ufeff" + x)
    put(t, "entra-xml-decl.xml", '<?xml version="1.0" encoding="utf-8"?>' + x)

    a_s, a_e = span(x, "<Assertion ", "</Assertion>")
    assertion = x[a_s:a_e]
    sig_s, sig_e = span(assertion, "<Signature ", "</Signature>")
    unsigned = assertion[:sig_s] + assertion[sig_e:]
    evil = unsigned.replace(NAME_ID, EVIL).replace('ID="_', 'ID="_evil', 1)
    signature = assertion[sig_s:sig_e]
    # XSW: a second (unsigned, evil) assertion before / after the signed one.
    put(t, "xsw-evil-first.xml", x[:a_s] + evil + assertion + x[a_e:])
    put(t, "xsw-evil-after.xml", x[:a_e] + evil + x[a_e:])
    # XSW: the signed original hidden in the signature's Object, the evil one read.
    issuer_end = evil.index("</Issuer>") + len("</Issuer>")
    sig_obj = signature.replace("</Signature>", f"<Object>{assertion}</Object></Signature>")
    put(t, "xsw-object.xml", x[:a_s] + evil[:issuer_end] + sig_obj + evil[issuer_end:] + x[a_e:])
    # XSW: the evil assertion wraps the original.
    put(t, "xsw-nested.xml", x[:a_s] + evil.replace("</Assertion>", assertion + "</Assertion>") + x[a_e:])
    # Comment and CDATA tricks inside the signed NameID (break the digest).
    put(t, "nameid-comment.xml", x.replace(NAME_ID, "test@alexandremaurelgmail.onmicrosoft.com<!---->.evil.com"))
    put(t, "nameid-cdata.xml", x.replace(NAME_ID, "<![CDATA[" + NAME_ID + "]]>"))
    put(t, "signature-stripped.xml", x[:a_s] + unsigned + x[a_e:])
    put(t, "reference-other-id.xml", x.replace('URI="#_8c68', 'URI="#_9c68', 1))
    put(t, "sha1.xml", x.replace("xmldsig-more#rsa-sha256", "xmldsig#rsa-sha1").replace("xmlenc#sha256", "xmldsig#sha1"))
    put(t, "xslt-transform.xml", x.replace("http://www.w3.org/2001/10/xml-exc-c14n#\"/></Transforms>",
                                           "http://www.w3.org/TR/1999/REC-xslt-19991116\"/></Transforms>", 1))
    put(t, "xxe.xml", '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + x.replace(NAME_ID, "&x;"))
    put(t, "utf16-decl.xml", '<?xml version="1.0" encoding="UTF-16"?>' + x)
    put(t, "deep.xml", "<a>" * 70 + "</a>" * 70)
    put(t, "issuer-other.xml", x.replace(ENTRA_IDP, "https://sts.windows.net/evil/", 1))
    put(t, "version-1.xml", x.replace('Version="2.0"', 'Version="1.1"', 1))
    status_error = (
        '<samlp:Response ID="_e1" Version="2.0" IssueInstant="2022-02-23T17:49:18.872Z" '
        'xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">'
        f'<Issuer xmlns="urn:oasis:names:tc:SAML:2.0:assertion">{ENTRA_IDP}</Issuer>'
        '<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Requester">'
        '<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:RequestUnsupported"/></samlp:StatusCode>'
        "<samlp:StatusMessage>AADSTS750054: SAMLRequest or SAMLResponse must be present\u0007</samlp:StatusMessage>"
        "</samlp:Status></samlp:Response>"
    )
    put(t, "status-error.xml", status_error)
    encrypted = x[:a_s] + (
        '<EncryptedAssertion xmlns="urn:oasis:names:tc:SAML:2.0:assertion">'
        '<xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" Type="http://www.w3.org/2001/04/xmlenc#Element">'
        '<xenc:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes256-gcm"/>'
        '<ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><xenc:EncryptedKey>'
        '<xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p">'
        '<ds:DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/></xenc:EncryptionMethod>'
        f"<xenc:CipherData><xenc:CipherValue>{b64(bytes(range(256)))}</xenc:CipherValue></xenc:CipherData>"
        "</xenc:EncryptedKey></ds:KeyInfo>"
        f"<xenc:CipherData><xenc:CipherValue>{b64(bytes(64))}</xenc:CipherValue></xenc:CipherData>"
        "</xenc:EncryptedData></EncryptedAssertion>"
    ) + x[a_e:]
    put(t, "encrypted-skeleton.xml", encrypted)
    put(t, "empty-form", "RelayState=x&SAMLResponse=")


# ---------------------------------------------------------------- saml_response_signed
DEV_IDP = "https://idp.example.com/"
DEV_SP = "https://wiki.example.com/saml"
DEV_ACS = "https://wiki.example.com/saml/acs"
NOW = "2024-05-01T12:00:00.000Z"
NB = "2024-05-01T11:59:55.000Z"
NOA = "2024-05-01T12:05:00.000Z"


def sig_template(ref):
    return (
        '<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo>'
        '<CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
        '<SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>'
        f'<Reference URI="#{ref}"><Transforms>'
        '<Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
        '<Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/></Transforms>'
        '<DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><DigestValue></DigestValue>'
        "</Reference></SignedInfo><SignatureValue></SignatureValue></Signature>"
    )


def dev_response(*, assertion_sig=True, response_sig=False, attributes=(), irt=' InResponseTo="_req1"',
                 name_id="ann@contoso.example", snoa="", extra_after="", subject_extra=""):
    aid, rid = "_a1", "_r1"
    a = (
        f'<Assertion ID="{aid}" IssueInstant="{NOW}" Version="2.0" xmlns="urn:oasis:names:tc:SAML:2.0:assertion">'
        f"<Issuer>{DEV_IDP}</Issuer>{sig_template(aid) if assertion_sig else ''}"
        f'<Subject><NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">{name_id}</NameID>'
        f'{subject_extra}<SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">'
        f'<SubjectConfirmationData{irt} NotOnOrAfter="{NOA}" Recipient="{DEV_ACS}"/>'
        "</SubjectConfirmation></Subject>"
        f'<Conditions NotBefore="{NB}" NotOnOrAfter="{NOA}"><AudienceRestriction>'
        f"<Audience>{DEV_SP}</Audience></AudienceRestriction></Conditions>"
    )
    if attributes:
        a += "<AttributeStatement>"
        for name, values in attributes:
            a += f'<Attribute Name="{name}">' + "".join(f"<AttributeValue>{v}</AttributeValue>" for v in values) + "</Attribute>"
        a += "</AttributeStatement>"
    a += (
        f'<AuthnStatement AuthnInstant="{NOW}" SessionIndex="{aid}"{snoa}><AuthnContext>'
        "<AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:Password</AuthnContextClassRef>"
        "</AuthnContext></AuthnStatement></Assertion>"
    )
    return (
        f'<samlp:Response ID="{rid}" Version="2.0" IssueInstant="{NOW}" Destination="{DEV_ACS}"{irt} '
        'xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">'
        f'<Issuer xmlns="urn:oasis:names:tc:SAML:2.0:assertion">{DEV_IDP}</Issuer>'
        f"{sig_template(rid) if response_sig else ''}"
        '<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>'
        f"{a}{extra_after}</samlp:Response>"
    )


def saml_response_signed():
    t = "saml_response_signed"
    groups = ("http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
              ["e7f3c0ba-0000-4000-8000-000000000001", "0c1b2a39-0000-4000-8000-00000000e0e0"])
    mail = ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress", ["ann@contoso.example"])
    put(t, "assertion-signed", b"\x00" + dev_response().encode())
    put(t, "assertion-signed-encrypted", b"\x01" + dev_response(attributes=[groups, mail]).encode())
    put(t, "response-signed", b"\x0a" + dev_response(assertion_sig=False, response_sig=True).encode())
    put(t, "response-signed-encrypted", b"\x0b" + dev_response(assertion_sig=False, response_sig=True).encode())
    put(t, "attributes", b"\x00" + dev_response(attributes=[groups, mail, ("UserEmail", ["a&amp;b<!---->c"])]).encode())
    put(t, "session-not-on-or-after", b"\x00" + dev_response(snoa=f' SessionNotOnOrAfter="{NOA}"').encode())
    put(t, "idp-initiated", b"\x00" + dev_response(irt="").encode())
    put(t, "nameid-comment", b"\x00" + dev_response(name_id="ann@contoso.example<!---->.evil.com").encode())
    put(t, "two-confirmations", b"\x00" + dev_response(subject_extra=(
        '<SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:holder-of-key"><SubjectConfirmationData/></SubjectConfirmation>'
        f'<SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><SubjectConfirmationData NotOnOrAfter="{NB}" Recipient="{DEV_ACS}"/></SubjectConfirmation>'
    )).encode())
    evil = dev_response(assertion_sig=False).split("<Assertion ", 1)[1].rsplit("</samlp:Response>", 1)[0]
    evil = "<Assertion " + evil.replace("ann@", "root@").replace('ID="_a1"', 'ID="_a2"')
    put(t, "xsw-second-assertion", b"\x00" + dev_response(extra_after=evil).encode())


# ---------------------------------------------------------------- saml_redirect
SLO = "https://wiki.example.com/saml/slo"


def logout_request(issuer=DEV_IDP, dest=SLO, now=NOW, session_index="_a1", name_id="ann@contoso.example"):
    si = f"<samlp:SessionIndex>{session_index}</samlp:SessionIndex>" if session_index else ""
    return (
        '<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
        f'ID="_lr1" Version="2.0" IssueInstant="{now}" Destination="{dest}">'
        f"<saml:Issuer>{issuer}</saml:Issuer>"
        f'<saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">{name_id}</saml:NameID>{si}'
        "</samlp:LogoutRequest>"
    )


def logout_response(issuer=DEV_IDP, dest=SLO, now=NOW, irt="_lr0",
                    status="urn:oasis:names:tc:SAML:2.0:status:Success"):
    return (
        '<samlp:LogoutResponse xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
        'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" '
        f'ID="_x1" Version="2.0" IssueInstant="{now}" Destination="{dest}" InResponseTo="{irt}">'
        f"<saml:Issuer>{issuer}</saml:Issuer>"
        f'<samlp:Status><samlp:StatusCode Value="{status}"/></samlp:Status>'
        "</samlp:LogoutResponse>"
    )


SIG_ALG = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"


def saml_redirect():
    t = "saml_redirect"
    fake_sig = b64(bytes(range(256)))
    put(t, "logout-request", f"SAMLRequest={q(deflate_b64(logout_request()))}&RelayState=%2Fa%20b")
    put(t, "logout-request-signed",
        f"SAMLRequest={q(deflate_b64(logout_request()))}&RelayState=r&SigAlg={q(SIG_ALG)}&Signature={q(fake_sig)}")
    put(t, "logout-request-all-sessions", f"SAMLRequest={q(deflate_b64(logout_request(session_index=None)))}")
    put(t, "logout-response", f"SAMLResponse={q(deflate_b64(logout_response()))}")
    put(t, "logout-response-failed", "SAMLResponse=" + q(deflate_b64(logout_response(
        status="urn:oasis:names:tc:SAML:2.0:status:Responder"))) + "&SigAlg="
        + q("http://www.w3.org/2000/09/xmldsig#rsa-sha1") + "&Signature=" + q(fake_sig))
    put(t, "logout-request-old", f"SAMLRequest={q(deflate_b64(logout_request(now='2024-05-01T11:00:00.000Z')))}")
    dtd = '<!DOCTYPE x [<!ENTITY a "b">]>' + logout_request()
    put(t, "logout-request-dtd", f"SAMLRequest={q(deflate_b64(dtd))}")
    put(t, "entra-style-extra-params",
        f"foo=bar&SAMLRequest={deflate_b64(logout_request())}&x=%ZZ&SigAlg={SIG_ALG}&Signature={fake_sig}")
    put(t, "repeated", "SAMLRequest=a&SAMLRequest=b")
    put(t, "both", "SAMLRequest=a&SAMLResponse=b")
    put(t, "bad-escape", "SAMLRequest=%%%")
    put(t, "sigalg-alone", "SAMLRequest=a&SigAlg=x")
    # A deflate bomb: 1 MiB of zeros, capped at 64 KiB.
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = c.compress(b"\0" * (1 << 20)) + c.flush()
    put(t, "inflate-bomb", f"SAMLRequest={q(b64(bomb))}")


# ---------------------------------------------------------------- idp_metadata
def idp_metadata():
    t = "idp_metadata"
    put(t, "entra-tenant-metadata.xml", METADATA)
    put(t, "config-entra-metadata.xml", (ROOT / "config" / "entra-metadata.xml").read_bytes())
    put(t, "signing-cert.pem", CERT_PEM)
    put(t, "example-idp.pem", (ROOT / "config" / "example-idp.pem").read_bytes())
    put(t, "example-idp-base64.cer", (ROOT / "config" / "example-idp-base64.cer").read_bytes())
    body = b"".join(l.strip() for l in CERT_PEM.splitlines() if not l.startswith(b"-----"))
    put(t, "signing-cert.der", base64.b64decode(body))


# ---------------------------------------------------------------- session_cookie
def session_cookie():
    t = "session_cookie"
    sid = "dGhpcyBpcyBhIGZ1enogc2Vzc2lvbiBpZCAzMiBieXQ"  # 43 chars, last 't' (low bits 01: refused)
    ok = "A" * 42 + "E"
    put(t, "host-prefixed", f"theme=dark; __Host-ssogate={ok}; lang=en")
    put(t, "plain", f"ssogate={ok}")
    put(t, "quoted", f'__Host-ssogate="{ok}"')
    put(t, "several-headers", f"a=b\n__Host-ssogate=short\n__Host-ssogate={ok}")
    put(t, "non-canonical", f"__Host-ssogate={sid}")
    put(t, "binding", f"__Host-ssogate-login-0123456789abcdef=tok; __Host-ssogate={ok}")
    put(t, "base64-standard", "__Host-ssogate=" + "A" * 41 + "+/")
    put(t, "bare-id", ok)


# ---------------------------------------------------------------- scim
FILTERS = [
    'userName eq "ida@contoso.example"',
    "externalId eq 0d1c-ida",
    'emails[type eq "work"].value eq "IDA@contoso.example"',
    'displayName eq "wiki EDITORS"',
    'externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef" and active eq true',
    'members[value eq "2819c223-7f76-453a-919d-413861904646"]',
    'userName eq "ann_gmail.com#EXT#@contoso.onmicrosoft.com"',
    'not (userName sw "a") or (title pr and name.givenName co "zo")',
    'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber gt 7',
    'meta.created ge "2024-01-01T00:00:00Z" and count le 12345.0',
    'emails[type eq "work" and primary eq true]',
    'legacy eq true and nothing eq null',
    'userName eq "<script>"',
    'displayName eq "a`b"',
    'displayName ew "\\u00e5ngstr\\u00f6m"',
]

PATCHES = [
    b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"emails[type eq \\"work\\"].value","value":"updatedEmail@microsoft.com"},{"op":"Replace","path":"name.familyName","value":"updatedFamilyName"},{"op":"Add","value":{"name.givenName":"Zo\xc3\xab","displayName":"Zo\xc3\xab \xc3\x85ngstr\xc3\xb6m"}}]}',
    b'{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}',
    b'{"Operations":[{"op":"replace","value":{"active":true}}]}',
    b'{"Operations":[{"op":"Add","path":"members","value":[{"$ref":null,"value":"902c246b-6245-4190-8e05-00816be7344a"}]}]}',
    b'{"Operations":[{"op":"Remove","path":"members","value":[{"$ref":null,"value":"2819c223-7f76-453a-919d-413861904646"}]}]}',
    b'{"Operations":[{"op":"Remove","path":"members[value eq \\"2819c223-7f76-453a-919d-413861904646\\"]"}]}',
    b'{"Operations":[{"op":"Replace","path":"userName","value":"ann.new@contoso.example"}]}',
    b'{"Operations":[{"op":"Add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"26118915"}]}',
    b'{"Operations":[{"op":"Replace","value":{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Ops"}}}]}',
    b'{"Operations":[{"op":"Remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"}]}',
    b'{"Operations":[{"op":"Remove","path":"userName"}]}',
    b'{"Operations":[{"op":"Replace","path":"id","value":"x"}]}',
    b'{"Operations":[{"op":"add","path":"emails[type eq \\"home\\"].value","value":"h@x.com"}]}',
    b'{"Operations":[{"op":"Replace","path":"displayName","value":"Wiki editors 2"}]}',
]


def scim():
    for i, f in enumerate(FILTERS):
        put("scim_filter", f"filter-{i:02}", f)
    for i, p in enumerate(PATCHES):
        put("scim_patch", f"user-{i:02}", b"\x00" + p)
        put("scim_patch", f"group-{i:02}", b"\x01" + p)
    t = "scim_service"
    put(t, "entra-validator-run", "\n===\n".join([
        'GET /Users?filter=userName+eq+"Test_User_ab6490ee@testuser.com"',
        "GET /Users/@USER@?attributes=userName,emails.value",
        "PATCH /Users/@USER@\n" + PATCHES[0].decode(),
        "PATCH /Users/@USER@\n" + PATCHES[1].decode(),
        "GET /Groups?excludedAttributes=members&filter=displayName+eq+\"Wiki editors\"",
        "PATCH /Groups/@GROUP@\n" + PATCHES[5].decode(),
        "DELETE /Users/@USER@",
    ]))
    put(t, "create-and-replace", "\n===\n".join([
        'POST /Users\n{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"userName":"ida@contoso.example","externalId":"0d1c-ida","active":"True","emails":[{"type":"work","value":"Ida@Contoso.example"}],"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Ops"},"password":"x"}',
        'PUT /Users/@USER@\n{"userName":"test_user_ab6490ee@testuser.com","active":false}',
        'POST /Groups\n{"displayName":"Admins","members":[{"value":"@USER@"},{"value":"@USER@"},{"display":"x"}]}',
        'GET /Users?startIndex=2&count=1&filter=active+eq+true',
        'POST /.search\n{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"userName sw \\"i\\"","startIndex":1,"count":10}',
        "GET /ServiceProviderConfig",
        "GET /Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
        "GET /ResourceTypes/User",
    ]))
    put(t, "rename-conflict", "\n===\n".join([
        'POST /Users\n{"userName":"b@x.com"}',
        'PATCH /Users/@USER@\n{"Operations":[{"op":"Replace","path":"userName","value":"B@X.com"}]}',
        'PUT /Groups/@GROUP@\n{"displayName":"Wiki editors","members":[{"value":"nope"}]}',
    ]))


# ---------------------------------------------------------------- request_target
TARGETS = [
    "/public/..;/admin/", "/admin/../public/x", "/public/../admin/",
    "/admin/users/1%2F..%2F..%2F..%2Fpublic", "/public/..%2Fadmin/", "/admin%5c..%5cpublic/x",
    "/public%5c..%5cadmin/", "/public/%252e%252e/admin/", "/public/%2e%2e/admin/", "/admin;x/",
    "/public;x/../admin/", "foo:/admin/x", "//admin/x", "//evil.example/", "/\\evil.example/",
    "/%2F%2Fevil.example/", "/%61dmin/%7euser/caf%c3%a9?q=%2F", "/caf\u00e9/x%20y/{a}|b",
    "http://wiki.example.com/admin/x?y=1", "HTTPS://WIKI.example.com", "http://wiki.example.com?q",
    "/files/a%2fb/c", "/files/a%2F%2Fb", "/Admin/X", "/admin./x", "/admin%20/x", "/admin::$DATA",
    "/ADMINI~1/x", "/%c0%ae%c0%ae/admin", "/a%u002e", "/a%0d%0ab", "*", "wiki.example.com:443",
    "/scim/v2/Users?filter=userName+eq+%22a%40b.com%22", "/a/b?x=1&y=%22",
]


def request_target():
    for i, t in enumerate(TARGETS):
        put("request_target", f"target-{i:02}", t)
    put("request_target", "raw-ff", b"/\xff/a")


# ---------------------------------------------------------------- wire_request_line
def wire_request_line():
    t = "wire_request_line"
    reqs = [
        b"GET /scim/v2/Users?filter=userName+eq+\"dale.mohr%40contoso.com\" HTTP/1.1\r\nHost: a\r\nX-J: \"q\" <b>\r\n\r\n{\"x\": \"<y>\"}",
        b"\r\nGET /a`b<c>?q=\"{|}^\\[]'  HTTP/1.1\r\n\r\n",
        b"GET\n\"x\"",
        b"GET /scim/v2/Users?filter=userName+eq+\"ann_x.com#EXT#@t.onmicrosoft.com\" HTTP/1.1\r\n\r\n",
        b"GET /a#b?c HTTP/1.1\r\nHost: x\r\n\r\nGET /\"second\" HTTP/1.1\r\n\r\n",
        b"POST /saml/acs HTTP/1.1\r\nContent-Length: 3\r\n\r\na<b",
    ]
    for i, r in enumerate(reqs):
        for sizes in (b"\x00\x00", b"\x01\x02", b"\x06\x04"):
            put(t, f"request-{i}-{sizes.hex()}", sizes + r)


# ---------------------------------------------------------------- config_toml
def config_toml():
    for p in sorted((ROOT / "config").glob("*.toml")):
        put("config_toml", p.name, p.read_bytes())
    src = (ROOT / "fuzz" / "fuzz_targets" / "gateway_request.rs").read_text()
    put("config_toml", "gateway-request.toml", src.split('const CONFIG: &str = r#"', 1)[1].split('"#;', 1)[0])


# ---------------------------------------------------------------- gateway_request
def gateway_request():
    t = "gateway_request"
    H = "devpg.tercen.com"

    def req(name, line, headers=(), body=""):
        head = "\r\n".join([line, f"Host: {H}", *headers])
        put(t, name, f"{head}\r\n\r\n{body}")

    req("public", "GET /public/x HTTP/1.1")
    req("admin-as-admin", "GET /admin/ HTTP/1.1", ["Cookie: theme=dark; __Host-ssogate=@ADMIN@; lang=en"])
    req("admin-as-staff", "GET /admin/ HTTP/1.1", ["Cookie: __Host-ssogate=@STAFF@"])
    req("wiki-as-staff", "GET /wiki/page?x=1 HTTP/1.1", ["Cookie: __Host-ssogate=@STAFF@", "X_Remote_User: admin"])
    for i, trick in enumerate(TARGETS[:16]):
        req(f"trick-{i:02}", f"GET {trick} HTTP/1.1", ["Cookie: __Host-ssogate=@STAFF@"])
    req("api-post", "POST /api/x HTTP/1.1", ["Cookie: __Host-ssogate=@ADMIN@", "X-HTTP-Method-Override: GET"])
    req("files-encoded-slash", "GET /files/a%2Fb HTTP/1.1", ["Cookie: __Host-ssogate=@STAFF@"])
    req("navigation-no-session", "GET /wiki/page HTTP/1.1", ["Accept: text/html,application/xhtml+xml"])
    req("form-post-replay", "POST /wiki/edit HTTP/1.1",
        ["Accept: text/html", "Content-Type: application/x-www-form-urlencoded", f"Origin: https://{H}"],
        "title=Main&text=hello")
    req("login-return-to", "GET /saml/login?return_to=%2Fwiki%2Fpage%3Fx%3D1 HTTP/1.1")
    req("login-return-to-evil", "GET /saml/login?return_to=//evil.example/ HTTP/1.1")
    req("acs-entra", "POST /_service/sso/auth/saml HTTP/1.1",
        ["Content-Type: application/x-www-form-urlencoded", "Cookie: __Host-ssogate-login-0123456789abcdef=tok"],
        f"SAMLResponse={q(b64(RESPONSE))}&RelayState=%2Fwiki")
    unsolicited = RESPONSE.replace(' InResponseTo="id6491e192-e2d9-4970-ab03-e38ffda6e033"', "")
    req("acs-idp-initiated-relay", "POST /_service/sso/auth/saml HTTP/1.1",
        ["Content-Type: application/x-www-form-urlencoded"],
        f"RelayState=https%3A%2F%2Fportal.example.com%2Fhome&SAMLResponse={q(b64(unsolicited))}")
    req("acs-empty", "POST /_service/sso/auth/saml HTTP/1.1", ["Content-Type: application/x-www-form-urlencoded"], "x=1")
    req("logout-get", "GET /saml/logout HTTP/1.1", ["Cookie: __Host-ssogate=@STAFF@"])
    req("logout-post", "POST /saml/logout HTTP/1.1", ["Cookie: __Host-ssogate=@STAFF@", f"Origin: https://{H}"])
    slo_req = logout_request(issuer=ENTRA_IDP, dest=f"https://{H}/saml/slo", now="2022-02-23T17:50:00.000Z",
                             name_id="bob@contoso.example", session_index=None)
    req("slo-request", f"GET /saml/slo?SAMLRequest={q(deflate_b64(slo_req))}&RelayState=x HTTP/1.1")
    slo_resp = logout_response(issuer=ENTRA_IDP, dest=f"https://{H}/saml/slo", now="2022-02-23T17:50:00.000Z")
    req("slo-response", f"GET /saml/slo?SAMLResponse={q(deflate_b64(slo_resp))} HTTP/1.1")
    req("metadata", "GET /saml/metadata HTTP/1.1")
    req("jwks", "GET /.well-known/jwks.json HTTP/1.1")
    req("forward-auth", "GET /_ssogate/auth HTTP/1.1",
        [":peer 127.0.0.1", "X-Original-URI: /admin/../public/", "X-Original-Method: GET",
         "Cookie: __Host-ssogate=@STAFF@"])
    req("forward-auth-untrusted", "GET /_ssogate/auth?mode=redirect HTTP/1.1", ["X-Original-URI: /admin/"])
    auth = f"Authorization: Bearer {SCIM_TOKEN}"
    req("scim-create", "POST /scim/v2/Users HTTP/1.1", [auth, "Content-Type: application/scim+json"],
        '{"userName":"bob@contoso.example","externalId":"e1","active":true}')
    req("scim-filter", 'GET /scim/v2/Users?filter=userName+eq+%22bob%40contoso.example%22 HTTP/1.1', [auth])
    req("scim-no-token", "GET /scim/v2/Users HTTP/1.1", ["Authorization: Bearer nope"])
    req("scim-patch", "PATCH /scim/v2/Users/x HTTP/1.1", [auth], PATCHES[1].decode())
    put(t, "iis-admin", "GET /ADMIN/x HTTP/1.1\r\nHost: iis.example.com\r\n\r\n")
    put(t, "iis-short-name", "GET /ADMINI~1/x HTTP/1.1\r\nHost: iis.example.com\r\n\r\n")
    put(t, "h2-authority", f"GET /public/ HTTP/2\r\n:authority {H}\r\nHost: evil.example\r\n\r\n")
    put(t, "absolute-form", f"GET http://{H}/admin/ HTTP/1.1\r\nHost: {H}\r\nCookie: __Host-ssogate=@STAFF@\r\n\r\n")
    put(t, "unknown-host", "GET / HTTP/1.1\r\nHost: other.example\r\n\r\n")


if __name__ == "__main__":
    if SEEDS.exists():
        shutil.rmtree(SEEDS)
    saml_response()
    saml_response_signed()
    saml_redirect()
    idp_metadata()
    session_cookie()
    scim()
    request_target()
    wire_request_line()
    config_toml()
    gateway_request()
    n = sum(1 for _ in SEEDS.rglob("*") if _.is_file())
    size = sum(p.stat().st_size for p in SEEDS.rglob("*") if p.is_file())
    print(f"{n} seed files, {size} bytes, under {SEEDS.relative_to(ROOT)}")
