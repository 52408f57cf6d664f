"""Seeded pseudo-output: answer text, reasoning, tool-call arguments and schema-shaped JSON.

Every piece it returns is one token for the simulator's tokenizer, so the number of pieces is
the number of decode steps and of `completion_tokens`.
"""

from __future__ import annotations

import json
import random
from typing import Any

EOS_TOKEN_ID = 128009  # Llama-3 <|eot_id|>: SGLang reports it as matched_stop

_WORD_TEXT = """
the of and to in is that for it as was with on be at by this had not are but from or have an
they which one you were her all she there would their we him been has when who will more no
if out so said what up its about into than them can only other new some could time these two
may then do first any my now such like our over man me even most made after also did many
before must through back years where much your way well down should because each just those
people how too little state good very make world still own see men work long get here
between both life being under never day same another know while last might us great old year
off come since against go came right used take three states himself few house use during
without again place around however home small found thought went say part once general high
upon school every don does got united left number course war until always away something
fact though water less public put think almost hand enough far took head yet system better
set told nothing night end why called didn eyes find going look asked later knew point next
program city business give group toward young days let room president side social given
present several order national
"""
_WORDS = tuple(_WORD_TEXT.split())


class Writer:
    """Output pieces for one request, deterministic in (seed, prompt)."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def natural_length(self, mean: int) -> int:
        """How many tokens the model would write before its stop token (at least 1)."""
        return max(1, round(self._random.expovariate(1.0 / max(mean, 1))))

    def words(self, count: int) -> list[str]:
        """`count` word tokens: a capitalised first word, then words with a leading space."""
        pieces = [" " + word for word in self._random.choices(_WORDS, k=count)]
        if pieces:
            pieces[0] = pieces[0][1:].capitalize()[:6]
        return pieces

    def sentence(self, count: int) -> str:
        return "".join(self.words(count))

    def value_for(self, schema: Any, depth: int = 0) -> Any:
        """A JSON value that fits a (simple) JSON schema: objects, arrays, enums, scalars."""
        if not isinstance(schema, dict) or depth > 8:
            return self.sentence(3)
        for key in ("const",):
            if key in schema:
                return schema[key]
        if schema.get("enum"):
            return self._random.choice(schema["enum"])
        for key in ("anyOf", "oneOf", "allOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                return self.value_for(schema[key][0], depth + 1)
        kind = schema.get("type", "object" if "properties" in schema else "string")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        return self._scalar_or_container(kind, schema, depth)

    def _scalar_or_container(self, kind: str, schema: dict[str, Any], depth: int) -> Any:
        if kind == "object":
            properties = schema.get("properties") or {}
            return {name: self.value_for(sub, depth + 1) for name, sub in properties.items()}
        if kind == "array":
            count = max(int(schema.get("minItems", 1)), 1)
            count = min(count, int(schema.get("maxItems", count)))
            return [self.value_for(schema.get("items", {}), depth + 1) for _ in range(count)]
        if kind == "integer":
            low = int(schema.get("minimum", 0))
            return self._random.randint(low, max(low, int(schema.get("maximum", low + 100))))
        if kind == "number":
            bottom = float(schema.get("minimum", 0.0))
            top = float(schema.get("maximum", bottom + 100.0))
            return round(self._random.uniform(bottom, max(bottom, top)), 2)
        if kind in ("boolean", "null"):
            return self._random.random() < 0.5 if kind == "boolean" else None
        text = self.sentence(2)
        low = int(schema.get("minLength", 0))
        text = text.ljust(low, "x")
        return text[: int(schema.get("maxLength", len(text)))]

    def json_text(self, schema: Any) -> str:
        """Compact-with-spaces JSON text (the way models write it) for `schema`."""
        return json.dumps(self.value_for(schema), ensure_ascii=False)
