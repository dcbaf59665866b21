"""``idpbuilder history``: an image's history entries matched with its layers, as ``docker history`` shows them."""

from __future__ import annotations

from typing import Any

from idpbuilder._records import dataclass
from idpbuilder.digest import Digest
from idpbuilder.image.model import Image
from idpbuilder.store.layout import Store

__all__ = ["HistoryRow", "image_history"]


@dataclass(frozen=True)
class HistoryRow:
    """One history entry, newest first: the image id on the top row only (docker prints ``<missing>`` below).

    ``size`` is the size of the layer the step made (its compressed blob, as stored), 0 for a metadata step;
    ``layer`` its diff id.
    """

    image_id: Digest | None
    created: str | None
    created_by: str
    size: int
    comment: str
    empty_layer: bool
    layer: Digest | None
    tags: tuple[str, ...]


def image_history(store: Store, text: str) -> list[HistoryRow]:
    """The history of image ``text`` (a reference or id), newest step first."""
    desc = store.resolve(text)
    image = Image.load(store, desc)
    raw = image.config.get("history")
    entries: list[dict[str, Any]] = [h for h in raw if isinstance(h, dict)] if isinstance(raw, list) else []
    layers = list(image.layers)
    rows: list[tuple[dict[str, Any], int, Digest | None]] = []
    li = 0
    for h in entries:
        if h.get("empty_layer"):
            rows.append((h, 0, None))
        elif li < len(layers):
            rows.append((h, layers[li].descriptor.size, layers[li].diff_id))
            li += 1
        else:
            rows.append((h, 0, None))
    for layer in layers[li:]:  # layers without a history entry (images made by other tools)
        rows.append(({}, layer.descriptor.size, layer.diff_id))
    tags = tuple(sorted(n for n, d in store.refs() if d.digest == desc.digest))
    out: list[HistoryRow] = []
    for i, (h, size, diff) in enumerate(reversed(rows)):
        out.append(
            HistoryRow(
                image_id=image.id if i == 0 else None,
                created=str(h["created"]) if h.get("created") else None,
                created_by=str(h.get("created_by") or ""),
                size=size,
                comment=str(h.get("comment") or ""),
                empty_layer=bool(h.get("empty_layer")),
                layer=diff,
                tags=tags if i == 0 else (),
            )
        )
    return out
