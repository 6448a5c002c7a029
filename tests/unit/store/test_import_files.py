"""``cti-bridge import``: good files, bad rows with their place, all or nothing, and
idempotent re-imports, on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from cti_bridge.store import Store
from cti_bridge.store.importer import ImportRejected, import_file
from cti_bridge.store.models import (
    Contract,
    Customer,
    CustomerNumber,
    CustomerProduct,
    Product,
    Script,
)
from tests.support.paths import REPO

pytest_plugins = ["cti_bridge.testing.store_fixtures"]

EXAMPLES = REPO / "config" / "examples"


def counts(store: Store) -> dict[str, int]:
    with store.sessions() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Customer, CustomerNumber, CustomerProduct, Product, Contract, Script)
        }


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def customer(store: Store, ref: str) -> dict[str, Any]:
    with store.sessions() as session:
        customer_id = session.scalar(select(Customer.id).where(Customer.external_ref == ref))
    assert customer_id is not None, ref
    found = store.customers.get_customer(customer_id)
    assert found is not None
    found["products"] = [(p["code"], p["serial"]) for p in store.customers.products_of(customer_id)]
    with store.sessions() as session:
        found["raw"] = sorted(
            session.scalars(
                select(CustomerNumber.raw).where(CustomerNumber.customer_id == customer_id)
            )
        )
        found["notes"] = session.scalar(select(Customer.notes).where(Customer.id == customer_id))
    return found


def import_examples(store: Store) -> dict[str, int]:
    return {
        name: import_file(store, kind, EXAMPLES / name)
        for kind, name in (
            ("customers", "customers.csv"),
            ("customers", "customers.json"),
            ("contracts", "contracts.csv"),
            ("scripts", "scripts.json"),
        )
    }


# --- good files --------------------------------------------------------------------------


def test_the_example_files_import(store: Store) -> None:
    assert import_examples(store) == {
        "customers.csv": 3,
        "customers.json": 2,
        "contracts.csv": 4,
        "scripts.json": 3,
    }
    jan = customer(store, "CRM-0001")
    assert jan["name"] == "Jan Peeters"
    assert jan["company"] == "Peeters Installaties"
    assert (jan["language"], jan["knowledge_level"], jan["tier"]) == ("nl", "expert", "premium")
    assert jan["timezone"] == "Europe/Brussels"
    assert jan["numbers"] == ["+3250123456", "+32470123456"]
    assert jan["raw"] == ["+32 50 12 34 56", "0470 12 34 56"]
    assert jan["products"] == [("HB-9", None), ("RTR-200", "SN-88812")]
    assert jan["notes"].startswith("Prefers e-mail confirmations.\nSecond line")
    assert store.customers.customer_for_number("+32485667788")["external_ref"] == "CRM-0004"  # type: ignore[index]
    zoe = customer(store, "CRM-0005")
    assert zoe["name"] == "Zoë Declercq" and zoe["numbers"] == ["+3293456780"]
    contracts = store.customers.contracts_of(jan["id"])
    assert [c["reference"] for c in contracts] == ["C-2026-0001", "C-2026-0002"]
    assert contracts[0]["covered"] == ["phone", "repair", "replacement"]
    assert contracts[0]["service_level_hours"] == 4
    assert contracts[0]["valid_until"] == "2026-12-31"
    assert contracts[1]["valid_until"] is None
    with store.sessions() as session:
        names = dict(session.execute(select(Product.code, Product.name)).all())
    assert names == {"RTR-200": "Router RTR-200", "HB-9": "Boiler HB-9"}
    router = store.customers.products_of(jan["id"])[1]["id"]
    script = store.customers.get_script(router, "no-internet")
    assert script is not None and script["version"] == 1
    assert script["body"].startswith("1. Are the lights")


def test_reimporting_the_same_files_changes_nothing(store: Store) -> None:
    import_examples(store)
    before = counts(store)
    jan = customer(store, "CRM-0001")
    import_examples(store)
    assert counts(store) == before
    assert customer(store, "CRM-0001") == jan


def test_a_corrected_file_updates_in_place(store: Store, tmp_path: Path) -> None:
    import_examples(store)
    before = counts(store)
    path = write(
        tmp_path,
        "customers.csv",
        "external_id,name,tier,phone_numbers,products\n"
        "CRM-0001,Jan Peeters-Maes,gold,050 12 34 56,RTR-200:SN-NEW\n",
    )
    assert import_file(store, "customers", path) == 1
    jan = customer(store, "CRM-0001")
    assert jan["name"] == "Jan Peeters-Maes" and jan["tier"] == "gold"
    assert jan["numbers"] == ["+3250123456"]  # the mobile is no longer his
    assert jan["products"] == [("RTR-200", "SN-NEW")]
    assert jan["company"] == "Peeters Installaties"  # no company column: left alone
    assert jan["language"] == "nl"
    after = counts(store)
    assert after["customers"] == before["customers"]
    assert after["customer_numbers"] == before["customer_numbers"] - 1
    assert store.customers.customer_for_number("0470123456") is None


def test_an_empty_cell_clears_the_field(store: Store, tmp_path: Path) -> None:
    import_examples(store)
    path = write(tmp_path, "c.csv", "external_id,name,company,notes\nCRM-0001,Jan Peeters,,\n")
    import_file(store, "customers", path)
    jan = customer(store, "CRM-0001")
    assert jan["company"] is None and jan["notes"] is None
    assert jan["numbers"] == ["+3250123456", "+32470123456"]  # no numbers column


def test_a_changed_script_gets_a_new_version_and_the_old_stays_readable(
    store: Store, tmp_path: Path
) -> None:
    import_examples(store)
    path = write(
        tmp_path,
        "scripts.csv",
        "product,name,title,body\n"
        'RTR-200,no-internet,No internet,"1. Check the cable.\n2. Restart."\n'
        "RTR-200,wifi-password,Forgotten Wi-Fi password,"
        '"The label under the router has the factory password.\n'
        'Changed it? Reset: hold the button on the back for 10 seconds."\n',
    )
    assert import_file(store, "scripts", path) == 2
    import_file(store, "scripts", path)  # again: no third version
    with store.sessions() as session:
        router = session.scalar(select(Product.id).where(Product.code == "RTR-200"))
    assert router is not None
    newest = store.customers.get_script(router, "no-internet")
    old = store.customers.get_script(router, "no-internet", version=1)
    assert newest is not None and newest["version"] == 2
    assert newest["body"] == "1. Check the cable.\n2. Restart."
    assert old is not None and old["body"].startswith("1. Are the lights")
    wifi = store.customers.get_script(router, "wifi-password")
    assert wifi is not None and wifi["version"] == 1  # same text: no new version


def test_numbers_may_move_between_customers_of_one_file(store: Store, tmp_path: Path) -> None:
    import_examples(store)
    path = write(
        tmp_path,
        "swap.json",
        '[{"external_id": "CRM-0001", "name": "Jan", "phone_numbers": ["050123456"]},'
        ' {"external_id": "CRM-0003", "name": "Luc",'
        ' "phone_numbers": ["0470123456", "0470123457"]}]',
    )
    import_file(store, "customers", path)
    assert sorted(customer(store, "CRM-0003")["numbers"]) == ["+32470123456", "+32470123457"]
    assert customer(store, "CRM-0001")["numbers"] == ["+3250123456"]
    assert store.customers.customer_for_number("0470123456")["external_ref"] == "CRM-0003"  # type: ignore[index]
    # Moving it back in the other order works too.
    path = write(
        tmp_path,
        "back.json",
        '[{"external_id": "CRM-0003", "name": "Luc", "phone_numbers": ["0470123457"]},'
        ' {"external_id": "CRM-0001", "name": "Jan",'
        ' "phone_numbers": ["050123456", "0470123456"]}]',
    )
    import_file(store, "customers", path)
    assert store.customers.customer_for_number("0470123456")["external_ref"] == "CRM-0001"  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("semicolons.csv", "external_id;name;phone_numbers\nX-1;Semi Colon;050 11 22 33\n"),
        ("bom.csv", "\ufeffexternal_id,name,phone_numbers\nX-1,Semi Colon,050 11 22 33\n"),
        ("no-extension", '[{"id": "X-1", "Name": "Semi Colon", "Phone": "050112233"}]'),
        (
            "wrapped.json",
            '{"customers": [{"external_id": "X-1", "name": "Semi Colon",'
            ' "phones": "050 11 22 33"}]}',
        ),
        (
            "numeric-id.json",
            '[{"external_id": 1, "name": "Semi Colon", "phone_numbers": "050112233"}]',
        ),
    ],
)
def test_dialects_of_files(store: Store, tmp_path: Path, name: str, text: str) -> None:
    assert import_file(store, "customers", write(tmp_path, name, text)) == 1
    found = store.customers.customer_for_number("+3250112233")
    assert found is not None and found["name"] == "Semi Colon"


def test_hostile_text_is_stored_as_text(store: Store, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "h.json",
        '[{"external_id": "H-1", "name": "<script>alert(1)</script>", '
        '"company": "Robert\'); DROP TABLE customers;--", "notes": "line 1\\nline 2"}]',
    )
    import_file(store, "customers", path)
    found = customer(store, "H-1")
    assert found["name"] == "<script>alert(1)</script>"
    assert found["company"] == "Robert'); DROP TABLE customers;--"
    assert found["notes"] == "line 1\nline 2"
    assert counts(store)["customers"] == 1


# --- bad files ---------------------------------------------------------------------------


def rejected(store: Store, path: Path, kind: str = "customers") -> str:
    with pytest.raises(ImportRejected) as caught:
        import_file(store, kind, path)
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message
    assert caught.value.user_facing is True
    return message


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "bad-number.csv",
            "external_id,name,phone_numbers\nA-1,Good,050123456\nA-2,Bad,12\n",
            "bad-number.csv line 3: phone_numbers: '12' is not a phone number",
        ),
        (
            "multiline.csv",
            'external_id,name,notes,phone_numbers\nA-1,Good,"two\nlines",050123456\n'
            "A-2,Bad,,not a number\n",
            "multiline.csv line 4: phone_numbers:",
        ),
        (
            "no-name.json",
            '[{"external_id": "A-1", "name": "ok"}, {"external_id": "A-2", "name": " "}]',
            "no-name.json item [1]: name: missing",
        ),
        (
            "typo.csv",
            "external_id,name,langauge\nA-1,Good,nl\n",
            "typo.csv line 2: unknown column 'langauge'",
        ),
        (
            "language.csv",
            "external_id,name,language\nA-1,Good,Nederlands\n",
            "language.csv line 2: language: 'Nederlands' is not a language code",
        ),
        (
            "zone.csv",
            "external_id,name,timezone\nA-1,Good,Mars/Olympus\n",
            "zone.csv line 2: timezone:",
        ),
        (
            "control.json",
            '[{"external_id": "A-1", "name": "Evil\\r\\nEvent: Hangup"}]',
            "control.json item [0]: name: contains control characters",
        ),
        (
            "dup.csv",
            "external_id,name\nA-1,One\nA-1,Again\n",
            "dup.csv line 3: external_id 'A-1' also on line 2",
        ),
        (
            "shared.csv",
            "external_id,name,phone_numbers\nA-1,One,050123456\nA-2,Two,+3250123456\n",
            "shared.csv line 3: phone_numbers: +3250123456 is also 'A-1''s",
        ),
        ("broken.json", '[{"external_id": "A-1",', "broken.json: not valid JSON"),
        (
            "object.json",
            '[{"external_id": "A-1", "name": "x"}, 3]',
            "object.json item [1]: not an object",
        ),
        (
            "list.json",
            '[{"external_id": "A-1", "name": ["x"]}]',
            "list.json item [0]: name: must be text",
        ),
        (
            "wide.csv",
            "external_id,name\nA-1,One,extra\n",
            "wide.csv line 2: 3 fields, the header has 2",
        ),
    ],
)
def test_a_bad_row_names_its_place_and_nothing_is_imported(
    store: Store, tmp_path: Path, name: str, text: str, expected: str
) -> None:
    message = rejected(store, write(tmp_path, name, text))
    assert message.startswith(expected), message
    assert counts(store)["customers"] == 0
    assert counts(store)["customer_numbers"] == 0


def test_not_utf8_and_missing_files(store: Store, tmp_path: Path) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes("external_id,name\nA-1,Zo\xeb\n".encode("latin-1"))
    assert rejected(store, latin).startswith("latin.csv: not UTF-8 text")
    assert rejected(store, tmp_path / "missing.csv").startswith("missing.csv: cannot read")
    assert "choose one of" in rejected(store, latin, kind="operators")


def test_contracts_need_known_customers_and_nothing_half_imports(
    store: Store, tmp_path: Path
) -> None:
    import_file(store, "customers", EXAMPLES / "customers.csv")
    path = write(
        tmp_path,
        "contracts.csv",
        "reference,customer,product,covered,valid_from,valid_until\n"
        "K-1,CRM-0001,NEW-PRODUCT,phone,2026-01-01,2026-12-31\n"
        "K-2,CRM-0999,,phone,2026-01-01,\n",
    )
    message = rejected(store, path, "contracts")
    assert message == (
        "contracts.csv line 3: customer: no customer 'CRM-0999' (import customers first); "
        "nothing was imported"
    )
    assert counts(store)["contracts"] == 0
    with store.sessions() as session:  # the product the first row would have created
        assert session.scalar(select(Product.id).where(Product.code == "NEW-PRODUCT")) is None


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("K-1,CRM-0001,,phone,2026-13-01,", "valid_from: '2026-13-01' is not a date"),
        ("K-1,CRM-0001,,phone,2026-02-01,2026-01-01", "valid_until: before valid_from"),
        ("K-1,CRM-0001,,phone,,", "valid_from: missing"),
        ("K-1,CRM-0001,,phone & more,2026-02-01,", "covered: 'phone & more'"),
        ("K-1,CRM-0001,bad code!,phone,2026-02-01,", "product: 'bad code!'"),
    ],
)
def test_bad_contract_rows(store: Store, tmp_path: Path, row: str, expected: str) -> None:
    import_file(store, "customers", EXAMPLES / "customers.csv")
    path = write(
        tmp_path, "k.csv", f"reference,customer,product,covered,valid_from,valid_until\n{row}\n"
    )
    assert rejected(store, path, "contracts").startswith(f"k.csv line 2: {expected}")


def test_a_failing_reimport_leaves_the_earlier_import_intact(store: Store, tmp_path: Path) -> None:
    import_examples(store)
    before = counts(store)
    jan = customer(store, "CRM-0001")
    path = write(
        tmp_path,
        "partial.csv",
        "external_id,name,phone_numbers\n"
        "CRM-0001,Renamed,0499 00 00 00\n"
        "CRM-0002,Marie,+32 9 345 67 89\n",
    )
    message = rejected(store, path)
    assert message.startswith(
        "partial.csv line 3: phone_numbers: +3293456789 belongs to customer #"
    )
    assert counts(store) == before
    assert customer(store, "CRM-0001") == jan


def test_service_level_hours_must_be_whole(store: Store, tmp_path: Path) -> None:
    import_file(store, "customers", EXAMPLES / "customers.csv")
    path = write(
        tmp_path,
        "k.json",
        '[{"reference": "K-1", "customer": "CRM-0001", "covered": ["phone"], '
        '"valid_from": "2026-01-01", "service_level_hours": "four"}]',
    )
    assert "service_level_hours: 'four' is not a whole number" in rejected(store, path, "contracts")


def test_the_cli_imports_and_reports_bad_files(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cti_bridge.app.cli import main

    config = tmp_path / "cti-bridge.toml"
    config.write_text(f'[database]\nurl = "{store_url}"\n[phone]\ndefault_region = "BE"\n')
    good = tmp_path / "customers.csv"
    shutil.copy(EXAMPLES / "customers.csv", good)
    assert main(["import", "customers", str(good), "--config", str(config)]) == 0
    assert "imported 3 customers" in capsys.readouterr().out
    bad = write(tmp_path, "bad.csv", "external_id,name,phone_numbers\nB-1,Bad,12\n")
    assert main(["import", "customers", str(bad), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err == (
        "cti-bridge: bad.csv line 2: phone_numbers: '12' is not a phone number; "
        "nothing was imported\n"
    )
