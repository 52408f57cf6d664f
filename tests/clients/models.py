"""Nested pydantic models, as applications hand them to structured-output clients: each
becomes a JSON schema with `$defs` and `$ref`, enums, bounds and lists."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field


class Kind(StrEnum):
    home = "home"
    work = "work"


class Address(BaseModel):
    street: str = Field(min_length=3)
    city: str
    kind: Kind


class Person(BaseModel):
    name: str = Field(max_length=40)
    age: int = Field(ge=0, le=120)
    addresses: list[Address] = Field(min_length=1, max_length=3)
    nickname: str | None = None


class Team(BaseModel):
    title: str
    lead: Person
    members: list[Person]
