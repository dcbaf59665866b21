"""OCI distribution client: push and pull.

Modules (imported directly, so that importing one does not pull in urllib3 for the others):

    transport.py   Transport: urllib3 pools per scheme, TLS from TrustConfig, redacted debug traces,
                   network failures -> TransientError / TLSError
    auth.py        Authenticator: WWW-Authenticate challenges, Basic, Bearer tokens per scope (GET realm)
    retry.py       RetryPolicy.run + is_retryable: the one retry loop and predicate
    client.py      RegistryClient(registry, RegistrySettings): ping, blobs, uploads, manifests, tags
    push.py        push_image(source, target, client) -> PushResult (REF@sha256:manifest-digest)
    pull.py        pull_image(store, ref, settings=...) -> Descriptor (used by FROM), pull() -> PullResult
    source.py      open_source(IMAGE): local store ref, oci:DIR[:ref], layout dir, docker/OCI archive
    target.py      resolve_push_target(ref, registry_flag) -> PushTarget
    locations.py   BlobLocations: which repos hold a blob (cross-repo mounts)
    progress.py    Reporter protocol (displayed by cli/progress.py)
"""
