//! Guards the per-request cost every authenticated request pays once its session is
//! known: route match on the normalised path, the authorization decision, and building
//! the identity headers. (Cookie parsing and the store lookup join this bench with the
//! session cache work; see issue "Performance".)

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ssogate::authz::{decide, Policy};
use ssogate::config::RouteConfig;
use ssogate::headers::HeaderMapping;
use ssogate::identity::{claims, Identity};
use std::collections::BTreeMap;

fn identity() -> Identity {
    let mut id = Identity {
        name_id: "alice@contoso.example".into(),
        ..Default::default()
    };
    let one = |v: &str| vec![v.to_string()];
    id.attributes
        .insert(claims::EMAIL.into(), one("alice@contoso.example"));
    id.attributes
        .insert(claims::DISPLAY_NAME.into(), one("Alice Example"));
    id.attributes.insert(
        claims::GROUPS.into(),
        (0..20)
            .map(|i| format!("e7f3c0ba-0000-4000-8000-{i:012}"))
            .collect(),
    );
    id
}

fn bench(c: &mut Criterion) {
    let routes: Vec<RouteConfig> = ["/public/", "/admin/", "/api/", "/reports/"]
        .iter()
        .enumerate()
        .map(|(i, p)| RouteConfig {
            path: p.to_string(),
            public: i == 0,
            allow_groups: if i == 1 {
                vec!["admins".into()]
            } else {
                vec![]
            },
        })
        .collect();
    let mut aliases = BTreeMap::new();
    aliases.insert(
        "admins".to_string(),
        "e7f3c0ba-0000-4000-8000-000000000019".to_string(),
    );
    let policy = Policy::compile(&routes, &aliases).unwrap_or_else(|e| panic!("{e:?}"));
    let headers = HeaderMapping::compile(
        &[
            ("X-Remote-User".into(), "name_id".into()),
            ("X-Remote-Email".into(), "email".into()),
            ("X-Remote-Name".into(), "display_name".into()),
            ("X-Remote-Groups".into(), "groups".into()),
        ],
        "X-Remote-",
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let id = identity();
    c.bench_function("route_authz_headers", |b| {
        b.iter(|| {
            let route = policy.route(black_box("/admin/settings/users?page=2"));
            let d = decide(&id, route);
            let h = headers.build(&id);
            black_box((d, h))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
