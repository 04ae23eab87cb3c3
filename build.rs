//! Bindings to the few libxml2 / libxmlsec1 functions and structures `saml::dsig` uses
//! (signature verification with IdP keys loaded once). Generated from the installed
//! headers, with the same compile flags the library was built with (`pkg-config
//! xmlsec1-openssl`: they change the size of `xmlSecSize`), so the structure layouts match
//! the library we link; bindgen's layout tests check them.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/saml/dsig/ffi.h");
    let lib = pkg_config::Config::new()
        .probe("xmlsec1-openssl")
        .unwrap_or_else(|e| {
            panic!("libxmlsec1 not found through pkg-config ({e}); install libxmlsec1-dev")
        });
    let mut args: Vec<String> = lib
        .include_paths
        .iter()
        .map(|p| format!("-I{}", p.display()))
        .collect();
    for (name, value) in &lib.defines {
        args.push(match value {
            Some(v) => format!("-D{name}={v}"),
            None => format!("-D{name}"),
        });
    }
    let bindings = bindgen::Builder::default()
        .header("src/saml/dsig/ffi.h")
        .clang_args(&args)
        .allowlist_function(
            "xmlReadMemory|xmlFreeDoc|xmlDocGetRootElement|xmlAddID|xmlValidateNCName",
        )
        .allowlist_function(
            "xmlSecDSigCtx(Create|Destroy|Verify|EnableReferenceTransform|EnableSignatureTransform)",
        )
        .allowlist_function("xmlSecDSigReferenceCtxGetPreDigestBuffer")
        .allowlist_function("xmlSecPtrListGet(Size|Item)|xmlSecBufferGet(Data|Size)")
        .allowlist_function("xmlSecKey(Duplicate|Destroy)|xmlSecOpenSSLAppKeyLoadMemory")
        .allowlist_function("xmlSecTransform(Incl|Excl)C14N.*GetKlass|xmlSecTransformEnvelopedGetKlass")
        .allowlist_function("xmlSecOpenSSLTransform(Rsa|Ecdsa)?Sha(1|256|384|512)GetKlass")
        .allowlist_var("XMLSEC_DSIG_FLAGS_STORE_SIGNEDINFO_REFERENCES|xmlSecTransformUriType.*")
        .allowlist_type("xmlSecDSigStatus|xmlSecKeyDataFormat|xmlElementType|xmlParserOption")
        .layout_tests(true)
        .generate()
        .unwrap_or_else(|e| panic!("bindgen over libxmlsec1's headers failed: {e}"));
    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_else(|e| panic!("OUT_DIR: {e}")));
    bindings
        .write_to_file(out.join("xmlsec_ffi.rs"))
        .unwrap_or_else(|e| panic!("writing the bindings: {e}"));
}
