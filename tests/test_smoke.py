def test_allowed_read_returns_masked_rows(api):
    r = api.execute({"target": "demo-postgres", "sql": "SELECT * FROM customers ORDER BY id LIMIT 5"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["row_count"] == 5
    assert [c["name"] for c in body["columns"]][:3] == ["id", "name", "email"]
    assert all(row[2].startswith("[email:") for row in body["rows"])
