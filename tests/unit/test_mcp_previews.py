"""The streamed previews /mcp keeps: per owner, the newest few, for a while."""

from pixyproxy.entrypoints.mcp.previews import Preview, PreviewStore


def preview(name: str) -> Preview:
    return Preview(name, name.encode(), "image/webp")


def test_a_preview_is_read_back_by_its_owner_only():
    store = PreviewStore()
    uri = store.put("ann", preview("job/1"))
    assert uri == "preview://job/1"
    assert store.get("ann", uri) == preview("job/1")
    assert store.get("bob", uri) is None and store.get(None, uri) is None


def test_the_oldest_goes_first_past_the_limit():
    store = PreviewStore(keep_at_most=2)
    first, second, third = (store.put("ann", preview(f"job/{i}")) for i in (1, 2, 3))
    assert store.get("ann", first) is None
    assert store.get("ann", second) and store.get("ann", third)


def test_an_expired_preview_is_gone():
    store = PreviewStore(keep_seconds=0)
    assert store.get("ann", store.put("ann", preview("job/1"))) is None
