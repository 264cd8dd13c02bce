//! The case file schema (`conformance/cases/*.yaml`); see `conformance/README.md`.

pub use crate::case_checks::*;
use serde::Deserialize;
use std::collections::BTreeMap;

/// One case: one upstream conformance test.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Case {
    /// Our name; equals the file stem.
    pub name: String,
    /// The upstream test's ShortName.
    pub upstream: String,
    /// The upstream test's features.
    pub features: Vec<String>,
    /// What the test is about, in a sentence.
    #[serde(default)]
    pub description: Option<String>,
    /// Set: the case is not run (its manifests are still loaded), and why.
    #[serde(default)]
    pub skip: Option<String>,
    /// Default Gateway for requests, `namespace/name`.
    #[serde(default)]
    pub gateway: Option<String>,
    /// A mesh test: the objects start from `base-mesh.yaml`, the gateway runs with a mesh
    /// identity, and requests and distributions leave a pod of the mesh through its waypoint
    /// (see `mesh.rs`).
    #[serde(default)]
    pub mesh: bool,
    /// Selector-less Services (`namespace/name`) and the app (`app` or `namespace/app`) whose pods
    /// back them, as the upstream test fills their EndpointSlices.
    #[serde(default)]
    pub endpoints: BTreeMap<String, String>,
    /// The test's own objects (multi-document YAML).
    pub manifests: String,
    /// Status checks after the manifests are applied.
    #[serde(default)]
    pub checks: Vec<Check>,
    /// Requests after the checks.
    #[serde(default)]
    pub requests: Vec<RequestCase>,
    /// Traffic-split checks after the requests.
    #[serde(default)]
    pub distributions: Vec<Distribution>,
    /// gRPC calls after the requests.
    #[serde(default)]
    pub grpc: Vec<GrpcCall>,
    /// Mirrored shares measured after the requests.
    #[serde(default)]
    pub mirror_shares: Vec<MirrorShare>,
    /// TLS connections carrying the TCP echo's line protocol (TLSRoute).
    #[serde(default)]
    pub streams: Vec<StreamCheck>,
    /// Later versions of the manifests, each with its own expectations.
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// A later version of the case's manifests and what must hold after it is applied.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Step {
    /// What changes.
    #[serde(default)]
    pub description: Option<String>,
    /// Set: this step's expectations are not checked, and why.
    #[serde(default)]
    pub skip: Option<String>,
    /// The full new set of the case's objects; unset keeps the previous set (no reload).
    #[serde(default)]
    pub manifests: Option<String>,
    /// Status checks.
    #[serde(default)]
    pub checks: Vec<Check>,
    /// Requests.
    #[serde(default)]
    pub requests: Vec<RequestCase>,
    /// Traffic-split checks.
    #[serde(default)]
    pub distributions: Vec<Distribution>,
    /// gRPC calls.
    #[serde(default)]
    pub grpc: Vec<GrpcCall>,
    /// Mirrored shares.
    #[serde(default)]
    pub mirror_shares: Vec<MirrorShare>,
    /// TLS streams.
    #[serde(default)]
    pub streams: Vec<StreamCheck>,
}

/// A TLS connection to the gateway with a server name: refused (closed or reset, no TLS alert),
/// or answered by the TCP echo of the expected backend, whose own connection is or is not TLS.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StreamCheck {
    /// Set: not made, and why.
    #[serde(default)]
    pub skip: Option<String>,
    /// Gateway (default as for requests).
    #[serde(default)]
    pub gateway: Option<String>,
    /// Gateway port as configured (default: its first listener's).
    #[serde(default)]
    pub port: Option<u16>,
    /// The TLS server name the client sends (and verifies the certificate against).
    pub sni: String,
    /// The gateway must close the connection before any TLS answer.
    #[serde(default)]
    pub rejected: bool,
    /// The answering pod's name starts with `<backend>-`.
    #[serde(default)]
    pub backend: Option<String>,
    /// The answering pod's namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Whether the backend's own connection is TLS (`IS_TLS`).
    #[serde(default)]
    pub backend_tls: Option<bool>,
    /// The SNI the backend received.
    #[serde(default)]
    pub backend_sni: Option<String>,
}

impl Case {
    /// The case as a list of steps: the first applies `manifests`, then `steps` follow.
    pub fn phases(&self) -> Vec<Step> {
        let mut out = vec![Step {
            description: None,
            skip: None,
            manifests: Some(self.manifests.clone()),
            checks: self.checks.clone(),
            requests: self.requests.clone(),
            distributions: self.distributions.clone(),
            grpc: self.grpc.clone(),
            mirror_shares: self.mirror_shares.clone(),
            streams: self.streams.clone(),
        }];
        out.extend(self.steps.iter().cloned());
        out
    }
}

/// One request and what must come back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RequestCase {
    /// Set: not sent, and why.
    #[serde(default)]
    pub skip: Option<String>,
    /// Gateway to send to (default: the case's, else `gateway-conformance-infra/same-namespace`).
    #[serde(default)]
    pub gateway: Option<String>,
    /// The Gateway port as configured (default: the Gateway's first listener's port).
    #[serde(default)]
    pub port: Option<u16>,
    /// `http` (default) or `https` (TLS trusting the generated CAs, SNI = Host unless `sni`).
    #[serde(default)]
    pub scheme: Option<String>,
    /// With `https`: the TLS server name (default: the Host; `""`: send none).
    #[serde(default)]
    pub sni: Option<String>,
    /// With `https`: present the client certificate held by this Secret (`namespace/name`).
    #[serde(default)]
    pub client_cert: Option<String>,
    /// The connection or TLS handshake must fail; any HTTP answer fails the check.
    #[serde(default)]
    pub fails: bool,
    /// Any HTTP answer but 200 and a timeout (408/504) passes, as upstream's
    /// `MakeRequestAndExpectFailure`; `status` is then not compared.
    #[serde(default)]
    pub error_status: bool,
    /// `http` (HTTP/1.1, default), `h2c` (HTTP/2 prior knowledge, cleartext), `h2` (HTTP/2 over
    /// TLS, selected by ALPN) or `websocket`
    /// (a WebSocket to `path` that must echo a text and a binary message).
    #[serde(default)]
    pub protocol: Option<String>,
    /// Host header (default: the gateway's address, as a client would send it). In a mesh case,
    /// the URL host: the destination (default `echo`) and the Host header.
    #[serde(default)]
    pub host: Option<String>,
    /// Mesh cases: the calling pod's namespace (default `gateway-conformance-mesh`).
    #[serde(default)]
    pub from: Option<String>,
    /// Path and optional query.
    pub path: String,
    /// Method (default GET).
    #[serde(default)]
    pub method: Option<String>,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Expected status, or any of a list (default 200); 408 and 504 stand for each other.
    #[serde(default)]
    pub status: Option<Statuses>,
    /// Headers the echo backend is asked to put on its answer (`X-Echo-Set-Header`).
    #[serde(default)]
    pub backend_sets_headers: BTreeMap<String, String>,
    /// On 200/204: response headers.
    #[serde(default)]
    pub response: Option<ResponseExpect>,
    /// Add a fresh `gateway-api-conformance-request-id` query parameter to the path (and to the
    /// path the backend must see).
    #[serde(default)]
    pub request_id: bool,
    /// Backends (`name` in the request's namespace, or `namespace/name`) one of whose pods must
    /// have served the very path and query sent, as a mirrored copy, within a bounded wait.
    #[serde(default)]
    pub mirrored_to: Vec<String>,
    /// On 200/204: the backend saw exactly one line of this header, and the answering pod's name
    /// starts with its value (a filter of the chosen backendRef named it).
    #[serde(default)]
    pub pod_from_header: Option<String>,
    /// Send the request this many times (default 1); every answer must pass.
    #[serde(default)]
    pub repeat: Option<usize>,
    /// On 200: the answering pod's name starts with this.
    #[serde(default)]
    pub backend: Option<String>,
    /// On 200: the answering pod's namespace (compared even when unset, as upstream does).
    #[serde(default)]
    pub namespace: Option<String>,
    /// On 200: the request as the backend must see it (default: the request as sent).
    #[serde(default)]
    pub at_backend: Option<BackendSees>,
    /// On 200: the request reached the backend over TLS, and what that TLS connection carried.
    #[serde(default)]
    pub backend_tls: Option<BackendTlsExpect>,
    /// On a redirect: the parts of `Location` that must hold.
    #[serde(default)]
    pub redirect: Option<RedirectExpect>,
}

/// The request as the backend must see it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackendSees {
    /// Host (unchecked if unset).
    #[serde(default)]
    pub host: Option<String>,
    /// Path and query (default: the path sent).
    #[serde(default)]
    pub path: Option<String>,
    /// Method (default GET).
    #[serde(default)]
    pub method: Option<String>,
    /// Headers whose values, joined with `,`, must be exactly these.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Headers that must not arrive.
    #[serde(default)]
    pub absent_headers: Vec<String>,
}

/// The TLS connection from the gateway as the backend saw it (the echo's `tls` object).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BackendTlsExpect {
    /// The SNI the gateway sent (unchecked if unset).
    #[serde(default)]
    pub server_name: Option<String>,
    /// A Secret (`namespace/name`) whose `tls.crt` the gateway must have presented as its client
    /// certificate.
    #[serde(default)]
    pub peer_certificate: Option<String>,
}

/// One status, or a list of acceptable ones.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Statuses {
    /// Exactly this status.
    One(u16),
    /// Any of these.
    Any(Vec<u16>),
}

impl Statuses {
    /// The acceptable statuses.
    pub fn list(&self) -> Vec<u16> {
        match self {
            Statuses::One(s) => vec![*s],
            Statuses::Any(l) => l.clone(),
        }
    }
}

/// Response headers that must hold on a 200/204 answer; names compare without regard to case,
/// values of all lines of a header are joined with `,`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResponseExpect {
    /// Headers that must have exactly this value.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Headers whose value must be one of these.
    #[serde(default)]
    pub one_of: BTreeMap<String, Vec<String>>,
    /// Headers that must not be there.
    #[serde(default)]
    pub absent_headers: Vec<String>,
    /// Compare values with all spaces removed.
    #[serde(default)]
    pub ignore_whitespace: bool,
}

/// One gRPC call through the gateway (`GrpcEcho` over h2c, one connection per call) and what
/// must come back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GrpcCall {
    /// Set: not made, and why.
    #[serde(default)]
    pub skip: Option<String>,
    /// Gateway (default as for requests).
    #[serde(default)]
    pub gateway: Option<String>,
    /// Gateway port as configured (default: its first listener's).
    #[serde(default)]
    pub port: Option<u16>,
    /// `Echo`, `EchoTwo` or `EchoThree`.
    pub method: String,
    /// `:authority` (default: the gateway's address with its port, as a gRPC client dials it).
    #[serde(default)]
    pub authority: Option<String>,
    /// Request metadata (keys are sent lower-cased).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Expected gRPC status code (default 0, OK).
    #[serde(default)]
    pub code: i32,
    /// On OK: the answering pod's name starts with this.
    #[serde(default)]
    pub backend: Option<String>,
    /// On OK: the pod's namespace, when set.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// The share of requests a percentage mirror copies, measured as upstream does: `total`
/// requests with one fresh request id, then the copies the mirror's pods served are counted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MirrorShare {
    /// Set: not measured, and why.
    #[serde(default)]
    pub skip: Option<String>,
    /// Path (a request id is added).
    pub path: String,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The backend that must answer every request.
    pub backend: String,
    /// The mirror backend (`name` in `namespace`).
    pub mirror: String,
    /// Namespace of both.
    pub namespace: String,
    /// Expected share copied, 0.0–1.0.
    pub share: f64,
    /// Requests per batch (default 500).
    #[serde(default = "default_total")]
    pub total: usize,
    /// Requests in flight (default 10).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Batches tried before failing (default 5, as upstream).
    #[serde(default = "default_mirror_attempts")]
    pub attempts: usize,
}

fn default_mirror_attempts() -> usize {
    5
}

/// Expected `Location` parts; unset parts default as upstream does.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RedirectExpect {
    /// Scheme (default: the request's, `http`).
    #[serde(default)]
    pub scheme: Option<String>,
    /// Hostname (unchecked if unset).
    #[serde(default)]
    pub host: Option<String>,
    /// Port (unset: none, or the scheme's default).
    #[serde(default)]
    pub port: Option<String>,
    /// Path (default: the request's path).
    #[serde(default)]
    pub path: Option<String>,
}

/// A traffic split measured over many requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Distribution {
    /// Set: not measured, and why.
    #[serde(default)]
    pub skip: Option<String>,
    /// Gateway (default as for requests).
    #[serde(default)]
    pub gateway: Option<String>,
    /// Gateway port (default 80).
    #[serde(default)]
    pub port: Option<u16>,
    /// Host header; in a mesh case the URL host (default `echo`), as for requests.
    #[serde(default)]
    pub host: Option<String>,
    /// Mesh cases: the calling pod's namespace (default `gateway-conformance-mesh`).
    #[serde(default)]
    pub from: Option<String>,
    /// Path.
    pub path: String,
    /// Namespace every answer must come from.
    pub namespace: String,
    /// Backend (pod name minus its last two `-` parts) → expected share, 0.0–1.0.
    pub weights: BTreeMap<String, f64>,
    /// Requests per batch (default 500).
    #[serde(default = "default_total")]
    pub total: usize,
    /// Requests in flight (default 10).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Allowed absolute deviation of each share (default 0.05).
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
    /// Batches tried before failing, as upstream retries for statistical noise (default 10).
    #[serde(default = "default_attempts")]
    pub attempts: usize,
    /// Each request is a gRPC `Echo` call on its own connection instead of an HTTP GET.
    #[serde(default)]
    pub grpc: bool,
}

fn default_total() -> usize {
    500
}
fn default_concurrency() -> usize {
    10
}
fn default_tolerance() -> f64 {
    0.05
}
fn default_attempts() -> usize {
    10
}
