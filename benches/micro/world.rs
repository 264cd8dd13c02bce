//! Builds synthetic configs for the micro-benchmarks: one Gateway and N HTTPRoute rules.

use waygate_config::resources::core::{ServicePort, ServiceSpec};
use waygate_config::resources::gateway::{
    AllowedRoutes, GatewaySpec, ListenerSpec, RouteNamespaces,
};
use waygate_config::resources::http_route::{
    HttpBackendRef, HttpHeaderMatch, HttpPathMatch, HttpRoute, HttpRouteMatch, HttpRouteRule,
    HttpRouteSpec, ParentRef,
};
use waygate_config::resources::{Gateway, ObjectMeta, Resources, Service, Source, Sourced};

fn meta(ns: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: name.into(),
        namespace: Some(ns.into()),
        ..Default::default()
    }
}

fn sourced<T>(object: T) -> Sourced<T> {
    Sourced {
        source: Source::default(),
        object,
    }
}

/// `n` rules on one host, spread over routes of 10 rules each: rule i matches PathPrefix
/// `/p{i}/api`, every third rule also needs a header, so lookups exercise prefix fallback.
pub fn world(n: usize) -> Resources {
    let mut r = Resources::default();
    r.gateways.push(sourced(Gateway {
        metadata: meta("infra", "gw"),
        spec: GatewaySpec {
            gateway_class_name: "istio".into(),
            listeners: vec![ListenerSpec {
                name: "http".into(),
                port: 80,
                protocol: "HTTP".into(),
                allowed_routes: Some(AllowedRoutes {
                    namespaces: Some(RouteNamespaces {
                        from: Some("All".into()),
                        selector: None,
                    }),
                    kinds: None,
                }),
                ..Default::default()
            }],
            infrastructure: None,
            allowed_listeners: None,
            tls: None,
        },
    }));
    r.services.push(sourced(Service {
        metadata: meta("apps", "svc"),
        spec: ServiceSpec {
            ports: vec![ServicePort {
                name: Some("http".into()),
                port: 8080,
                ..Default::default()
            }],
            ..Default::default()
        },
    }));
    let routes = n.div_ceil(10);
    for ri in 0..routes {
        let rules = (0..10)
            .map(|k| ri * 10 + k)
            .filter(|&i| i < n)
            .map(|i| HttpRouteRule {
                matches: vec![HttpRouteMatch {
                    path: Some(HttpPathMatch {
                        kind: Some("PathPrefix".into()),
                        value: Some(format!("/p{i}/api")),
                    }),
                    headers: if i % 3 == 0 {
                        vec![HttpHeaderMatch {
                            kind: None,
                            name: "x-version".into(),
                            value: "2".into(),
                        }]
                    } else {
                        vec![]
                    },
                    ..Default::default()
                }],
                backend_refs: vec![HttpBackendRef {
                    name: "svc".into(),
                    port: Some(8080),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        r.http_routes.push(sourced(HttpRoute {
            metadata: meta("apps", &format!("route-{ri}")),
            spec: HttpRouteSpec {
                parent_refs: vec![ParentRef {
                    name: "gw".into(),
                    namespace: Some("infra".into()),
                    ..Default::default()
                }],
                hostnames: vec!["shop.example.com".into()],
                rules,
            },
        }));
    }
    r.sort();
    r
}
