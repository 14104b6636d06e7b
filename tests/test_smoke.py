def test_signup_login_and_read_me(client):
    r = client.post(
        "/api/v1/auth/signup", json={"name": "minji", "email": "Minji@Example.com", "password": "12345678"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["email"] == "minji@example.com"
    r = client.post("/api/v1/auth/login", data={"username": "minji", "password": "12345678"})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    r = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["name"] == "minji"
