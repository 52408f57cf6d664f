"""Which backend holds a stored response: Responses API ids bound to the backend that made them.

SGLang keeps responses in its own memory, so retrieving one, cancelling it, or continuing from
it (`previous_response_id`) must reach the same replica. Bindings live in this edge's memory,
newest kept up to a capacity; an id this edge did not create (or has forgotten) is unknown,
which the gateway answers with OpenAI's 404.
"""

from __future__ import annotations

from collections import OrderedDict

import msgspec

DEFAULT_CAPACITY = 100_000


class Binding(msgspec.Struct, frozen=True):
    key_id: str | None  # the key that created it: only that key may use it again
    model: str  # the catalog name the response was created under
    backend_id: str


class ResponseBindings:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._bindings: OrderedDict[str, Binding] = OrderedDict()

    def bind(self, response_id: str, binding: Binding) -> None:
        self._bindings[response_id] = binding
        self._bindings.move_to_end(response_id)
        while len(self._bindings) > self._capacity:
            self._bindings.popitem(last=False)

    def find(self, response_id: str, key_id: str | None) -> Binding | None:
        """The binding of `response_id`, if the same key created it."""
        binding = self._bindings.get(response_id)
        if binding is None or binding.key_id != key_id:
            return None
        return binding

    def __len__(self) -> int:
        return len(self._bindings)
