"""Each stream's record, one module per stream: schema, values and builders."""
