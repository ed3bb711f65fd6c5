"""Issue #25: every row of the table traced in its line's place (refused ones too), with each id
it went under, and the counts made once from those rows: "submitted" counted rows stopped
before sending, resent rows vanished under their RETRY ids, and a reason code switchlab does
not describe must still reach the files."""

from __future__ import annotations

from pathlib import Path

from banks.payment_table import check_payment_table
from banks.payout import Outcomes, PayoutResult, PayoutStatus
from banks.payout_trace import COUNTS, Figures, RunRows, trace
from protocol.messages import VerificationResult

TABLE = (
    "citizen_id,full_name,amount_vnd,programme,creditor_bic,account_id,end_to_end_id\n"
    "001190012345,Nguyễn Thị Rà,100,luong_huu,BFTVVNVX,1,E1\n"
    "079090054321,Trần Văn Đức,200,luong_huu,BFTVVNVX,2,E2\n"
    "036145011111,Lê Thị Hoa,1.000,luong_huu,BFTVVNVX,3,E3\n"  # refused: separators
    "038040022222,Phạm Văn Minh,400,luong_huu,BFTVVNVX,4,E4\n"
    "040160033333,Hoàng Thị Lan,500,luong_huu,,,E5\n"
    "040160033334,Hoàng Văn Nam,600,luong_huu,BFTVVNVX,6,E6\n"
)


def test_each_row_in_its_lines_place_with_every_id_and_one_set_of_counts(
        tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(TABLE, encoding="utf-8")
    table = check_payment_table(path)
    outcomes = Outcomes(table.payments)
    outcomes.append(PayoutStatus.PAID)
    outcomes.append(PayoutStatus.STOPPED, "BE01")
    outcomes.append(PayoutStatus.REJECTED, "MD07")
    outcomes.append(PayoutStatus.STOPPED, "NARR")  # a code the scheme does not describe
    outcomes.append(PayoutStatus.PAID)
    ids = {0: ["E1"], 1: ["E2"], 2: ["E4"], 3: ["E5"], 4: ["E6", "RETRY1abc"]}
    run = RunRows(range(5), PayoutResult(outcomes, 1.0), ids.__getitem__,
                  {"E2": VerificationResult("E2", False, "BE01", "T** V** Đ**")},
                  {"040160033333": ("ICBVVNVX", "108001234567")})
    rows = list(trace(table, {}, run))
    assert [(r["line"], r["status"], r["reason_code"]) for r in rows] == [
        (2, "paid", ""), (3, "stopped", "BE01"), (4, "refused", ""), (5, "rejected", "MD07"),
        (6, "stopped", "NARR"), (7, "paid", "")]
    assert "amount_vnd '1.000'" in rows[2]["reason_text"]
    # a new user's finding: a refused row was blanks but its line; it carries what the
    # table gave, the amount as written, so a clerk need not go back to the table
    assert (rows[2]["citizen_id"], rows[2]["full_name"], rows[2]["amount_vnd"],
            rows[2]["account_id"]) == ("036145011111", "Lê Thị Hoa", "1.000", "3")
    assert rows[1]["masked_name"] == "T** V** Đ**" and rows[1]["ids_sent"] == ""
    assert rows[4]["reason_text"] == "reason not described by the scheme"
    assert (rows[4]["creditor_bic"], rows[4]["paid_by"]) == ("ICBVVNVX", "citizen_id")
    assert rows[5]["ids_sent"] == "E6 RETRY1abc" and rows[5]["end_to_end_id"] == "E6"
    assert [r["listed"] for r in rows] == ["", "cash", "", "deceased", "cash", ""]

    figures = Figures()
    for row in rows:
        figures.add(row)
    counts = figures.as_dict()["counts"]
    assert list(counts) == list(COUNTS)
    assert counts == {"rows": 6, "refused": 1, "earlier": 0, "stopped": 2, "sent": 3,
                      "resent": 1, "paid": 2, "returned": 0, "rejected": 1, "unresolved": 0,
                      "cash": 2, "deceased": 1}
    ends = ("refused", "earlier", "stopped", "paid", "returned", "rejected", "unresolved")
    assert sum(counts[end] for end in ends) == counts["rows"]
    assert figures.amounts_vnd["sent"] == 100 + 400 + 600  # never the stopped rows


def test_a_row_refused_as_a_repeat_carries_what_the_table_gave(tmp_path: Path) -> None:
    """A new user's finding 7: rows refused as repeats lost province, district, commune,
    address, creditor_bic and account_id, which a row refused for its own cells keeps."""
    path = tmp_path / "t.csv"
    header = ("citizen_id,full_name,amount_vnd,programme,province,district,commune,address,"
              "creditor_bic,account_id,end_to_end_id\n")
    place = "Tỉnh Nghệ An,Huyện Nghi Lộc,Xã Nghi Lộc,Thôn Trung,BFTVVNVX"
    path.write_text(header
                    + f"001190012345,Nguyễn Thị Rà,100,luong_huu,{place},11,\n"
                    + f"001190012345,Nguyễn Thị Rà,200,luong_huu,{place},12,\n"
                    + f"038040022222,Phạm Văn Minh,300,luong_huu,{place},13,E3\n"
                    + f"040160033333,Hoàng Thị Lan,400,luong_huu,{place},14,E3\n"
                    + f"036145011111,Lê Thị Hoa,1.000,luong_huu,{place},15,E5\n",
                    encoding="utf-8")
    table = check_payment_table(path)
    outcomes = Outcomes(table.payments)
    outcomes.append(PayoutStatus.PAID)  # line 4, the first to give E3
    run = RunRows(range(1), PayoutResult(outcomes, 0.0), [["E3"]].__getitem__)
    rows = {r["line"]: r for r in trace(table, {}, run) if r["status"] == "refused"}
    assert [(line, r["citizen_id"], r["amount_vnd"]) for line, r in rows.items()] == [
        (2, "001190012345", "100"), (3, "001190012345", "200"), (5, "040160033333", "400"),
        (6, "036145011111", "1.000")]
    given = ("province", "district", "commune", "address", "creditor_bic")
    for r in rows.values():  # repeats (lines 2, 3: same person; 5: an id twice) as line 6
        assert [r[c] for c in given] == place.split(","), r
        assert r["account_id"] == str(9 + r["line"])
    # the id the table gave; none where the table gave none (not the run's derived one)
    assert [r["end_to_end_id"] for r in rows.values()] == ["", "", "E3", "E5"]


def test_refused_rows_are_counted_by_bank_and_programme(tmp_path: Path) -> None:
    """A new user's finding 6: "By bank" and "By programme" showed refused = 0 with five rows
    refused, and a programme whose only row was refused was missing."""
    path = tmp_path / "t.csv"
    path.write_text(
        "citizen_id,full_name,amount_vnd,programme,creditor_bic,account_id\n"
        "001190012345,Nguyễn Thị Rà,100,luong_huu,BFTVVNVX,1\n"
        "036145011111,Lê Thị Hoa,1.000,luong_huu,BFTVVNVX,3\n"  # separators
        "038040022222,Phạm Văn Minh,10,nguoi_co_cong,,\n"  # good, by citizen id
        "0381400222,Phạm Văn Nam,10,nguoi_co_cong,,\n"  # too short an id, no bank
        "040160033333,Hoàng Thị Lan,500,tro_cap,not a bic,7\n", encoding="utf-8")
    table = check_payment_table(path)
    outcomes = Outcomes(table.payments)
    for _ in table.payments:
        outcomes.append(PayoutStatus.PAID)
    ids = [[p.end_to_end_id] for p in table.payments]
    run = RunRows(range(len(table.payments)), PayoutResult(outcomes, 1.0), ids.__getitem__)
    figures = Figures()
    for row in trace(table, {}, run):
        figures.add(row)
    summary = figures.as_dict()
    assert summary["counts"]["refused"] == 3
    assert summary["by_bank"]["BFTVVNVX"] == {"paid": 1, "paid_vnd": 100, "refused": 1}
    assert summary["by_bank"]["(none)"]["refused"] == 1
    assert summary["by_bank"]["(not a BIC)"] == {"refused": 1}
    assert summary["by_programme"]["luong_huu"]["refused"] == 1
    assert summary["by_programme"]["nguoi_co_cong"]["refused"] == 1
    assert summary["by_programme"]["tro_cap"] == {"refused": 1}
    assert sum(group.get("refused", 0) for group in summary["by_bank"].values()) == 3
