"""Result objects of write operations, shaped like pymongo's."""


class InsertOneResult:
    __slots__ = ("inserted_id",)

    def __init__(self, inserted_id):
        self.inserted_id = inserted_id          # the _id of the new document

    acknowledged = True

    def __repr__(self):
        return f"InsertOneResult(inserted_id={self.inserted_id!r})"


class InsertManyResult:
    __slots__ = ("inserted_ids",)

    def __init__(self, inserted_ids):
        self.inserted_ids = inserted_ids        # the _ids, in the order of the documents given

    acknowledged = True

    def __repr__(self):
        return f"InsertManyResult(inserted_ids=[{len(self.inserted_ids)} ids])"


class UpdateResult:
    __slots__ = ("matched_count", "modified_count", "upserted_id")

    def __init__(self, matched_count, modified_count, upserted_id=None):
        self.matched_count = matched_count      # documents the filter matched
        self.modified_count = modified_count    # of those, documents whose stored bytes changed
        self.upserted_id = upserted_id          # _id of the document an upsert inserted, else None

    acknowledged = True

    @property
    def raw_result(self):
        out = {"n": self.matched_count + (1 if self.upserted_id is not None else 0),
               "nModified": self.modified_count, "ok": 1.0,
               "updatedExisting": self.matched_count > 0}
        if self.upserted_id is not None:
            out["upserted"] = self.upserted_id
        return out

    def __repr__(self):
        return (f"UpdateResult(matched_count={self.matched_count}, modified_count={self.modified_count}, "
                f"upserted_id={self.upserted_id!r})")


class DeleteResult:
    __slots__ = ("deleted_count",)

    def __init__(self, deleted_count):
        self.deleted_count = deleted_count      # documents removed

    acknowledged = True

    @property
    def raw_result(self):
        return {"n": self.deleted_count, "ok": 1.0}

    def __repr__(self):
        return f"DeleteResult(deleted_count={self.deleted_count})"


class ReturnDocument:
    """find_one_and_update / find_one_and_replace: return the document before or after the change."""
    BEFORE = False
    AFTER = True
