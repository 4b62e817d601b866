"""Micro-benchmarks of the document layer's encoding: what an insert does to each document
before it reaches storage (check the field names, msgpack-encode), what a find does to each
stored one (decode), and the order-preserving key of an indexed value.

A round handles BATCH documents of ten fields (nested, an array, an ObjectId, a datetime), the
shape of `kvdb bench documents`.
"""
import datetime
import random

import pytest

from kvdb.documents import ObjectId
from kvdb.documents.codec import check_document, pack, unpack
from kvdb.documents.keycodec import encode
from microdata import BATCH, ROUNDS, SEED


def make_doc(i, rng):
    return {
        "_id": ObjectId(),
        "name": "user%07d" % i,
        "email": "user%d@example.org" % i,
        "age": rng.randrange(18, 90),
        "grp": rng.randrange(1000),
        "score": round(rng.random() * 100, 3),
        "active": rng.random() < 0.7,
        "tags": ["tag%d" % rng.randrange(50) for _ in range(rng.randrange(1, 4))],
        "address": {"street": "%d Main St" % rng.randrange(1000), "zip": "%05d" % rng.randrange(100000),
                    "geo": {"lat": round(rng.uniform(-90, 90), 4), "lon": round(rng.uniform(-180, 180), 4)}},
        "created": datetime.datetime(2024, 1, 1) + datetime.timedelta(seconds=i),
    }


@pytest.fixture(scope="module")
def docs():
    rng = random.Random(SEED)
    return [make_doc(i, rng) for i in range(BATCH)]


@pytest.mark.benchmark(group="documents", min_rounds=ROUNDS)
def test_document_encode(benchmark, docs):
    def encode_all():
        for doc in docs:
            check_document(doc)
            pack(doc)

    benchmark(encode_all)


@pytest.mark.benchmark(group="documents", min_rounds=ROUNDS)
def test_document_decode(benchmark, docs):
    packed = [pack(doc) for doc in docs]

    def decode_all():
        for data in packed:
            unpack(data)

    benchmark(decode_all)
    assert unpack(packed[0]) == docs[0]


@pytest.mark.benchmark(group="documents", min_rounds=ROUNDS)
def test_index_key_encode(benchmark, docs):
    """The index keys of three fields of each document: a string, an int and a float."""
    values = [v for doc in docs for v in (doc["name"], doc["grp"], doc["score"])]

    def encode_all():
        for v in values:
            encode(v)

    benchmark(encode_all)
