"""OCI distribution client: push and pull.

Modules (imported directly, so that importing one does not pull in urllib3 for the others):

    transport.py   Transport: urllib3 (imported on first use), TLS trust for https://
                   from TrustConfig, redacted debug traces, network failures -> TransientError / TLSError,
                   refused / unresolvable before first contact -> UnreachableError (fails fast)
    auth.py        Authenticator: WWW-Authenticate challenges, Basic, Bearer tokens per scope (GET realm)
    retry.py       RetryPolicy.run + is_retryable: the one retry loop and predicate (first-contact rule)
    settings.py    RegistrySettings (keychain, trust, retry, jobs, chunk sizes), endpoint_host
    client.py      RegistryClient(registry, RegistrySettings): ping, auth'd requests, blobs, manifests,
                   get_json / list_repositories / list_tags (Link pagination)
    upload.py      blob upload sessions: monolithic PUT or PATCH chunks, 416 re-sync, hashing on the way out
    wire.py        API messages: ManifestData, JsonPage, Link pagination, OCI error bodies, bounded reads
    push.py        push_image(source, target, client) -> PushResult (REF@sha256:manifest-digest)
    pull.py        pull_image(store, ref, settings=...) -> Descriptor (used by FROM), pull() -> PullResult
    source.py      open_source(IMAGE): local store ref, oci:DIR[:ref], layout dir, docker/OCI archive
    target.py      resolve_push_target(ref, registry_flag) -> PushTarget (cluster/target.py adds the cluster)
    locations.py   BlobLocations: which repos hold a blob (cross-repo mounts)
    progress.py    Reporter protocol (displayed by cli/progress.py)
"""
