//! Generates the gRPC echo service from proto/grpcecho.proto with the protoc that ships inside the
//! protoc-bin-vendored crate, so the build needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; tonic-prost-build reads PROTOC from the env.
    unsafe { std::env::set_var("PROTOC", protoc) };
    println!("cargo:rerun-if-changed=proto/grpcecho.proto");
    tonic_prost_build::configure().compile_protos(&["proto/grpcecho.proto"], &["proto"])?;
    Ok(())
}
