"""Constrained decoding as SGLang serves it: JSON schemas, regular expressions and EBNF grammars
turned into seeded random text that the constraint accepts (as a grammar-masked model writes
it), and the 400 that SGLang answers for a constraint its grammar backend cannot compile."""
