"""Generated passwords are safe to hand to command-line tools."""

from settings import new_password


def test_generated_passwords_never_start_with_a_dash():
    # token_urlsafe alone starts one in 64 with '-': 2,000 draws miss that with p ~ 1e-14
    passwords = [new_password() for _ in range(2000)]
    assert not any(p.startswith("-") for p in passwords)
    assert all(len(p) == 32 for p in passwords)
    assert len(set(passwords)) == len(passwords)
