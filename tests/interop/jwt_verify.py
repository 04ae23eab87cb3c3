"""Verify an ssogate identity JWT with PyJWT (PyPI), independently of ssogate's own code.

Usage: jwt_verify.py JWKS_JSON_FILE TOKEN AUDIENCE ISSUER
Prints the verified claims as JSON and the kid on stderr; exits 1 when verification fails.
"""

import json
import sys

import jwt

jwks_file, token, audience, issuer = sys.argv[1:5]
with open(jwks_file) as f:
    jwks = jwt.PyJWKSet.from_dict(json.load(f))
kid = jwt.get_unverified_header(token)["kid"]
key = next(k for k in jwks.keys if k.key_id == kid)
try:
    claims = jwt.decode(
        token,
        key.key,
        algorithms=[key.algorithm_name],
        audience=audience,
        issuer=issuer,
        options={"require": ["exp", "iat", "sub", "aud", "iss"]},
    )
except jwt.PyJWTError as e:
    print(f"verification failed: {e!r}", file=sys.stderr)
    sys.exit(1)
print(json.dumps({"kid": kid, "alg": key.algorithm_name, "claims": claims}))
