"""The label name prompt (issue 31): the first stroke on an unlabelled image asks what the label is, offering the
structures of the modality with the SNOMED CT codes exports write; the label panel's Rename... opens the same
dialog."""

from __future__ import annotations

import pytest
from pydicom.sr.codedict import codes

from gui_helpers import _open_phantom, _paint
from unetgui.core.volume import Label, default_color
from unetgui.formats.dicom_seg import label_coding
from unetgui.ui import label_prompt
from unetgui.ui.label_prompt import LabelNameDialog, ask_label_name, needs_name, structures

pytestmark = pytest.mark.gui
_MODAL = label_prompt.run_dialog  # the real exec(), even where a fixture answers the dialog for other tests


def _answer(monkeypatch, name: str | None) -> list[LabelNameDialog]:
    """Make the dialog answer ``name`` (None: Cancel) without showing it; returns the dialogs asked."""
    asked = []

    def run(dialog):
        asked.append(dialog)
        if name is not None:
            dialog.choose(name)
        return name is not None

    monkeypatch.setattr(label_prompt, "run_dialog", run)
    return asked


def _answer_modal(name: str, seen: list) -> None:
    """Answer the next modal dialog for real (exec() runs): type ``name``, press OK; within about a second."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    def answer(tries: int = 50) -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, LabelNameDialog):
            if tries:
                QTimer.singleShot(20, lambda: answer(tries - 1))
            return
        try:
            seen.append(dialog.visible_structures())
            dialog.choose(name)
        finally:  # never leave a test blocked in exec()
            dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()
            if dialog.isVisible():  # OK was disabled
                dialog.reject()

    QTimer.singleShot(0, answer)


def test_needs_name_on_a_fresh_image_until_named_or_painted(window, qtbot, monkeypatch):
    session = window.session
    assert not needs_name(session)  # nothing open
    _open_phantom(window, qtbot)
    assert needs_name(session)
    _answer(monkeypatch, "Liver")
    assert ask_label_name(window, session) and not needs_name(session)
    _open_phantom(window, qtbot)
    _paint(window, 4, 30, 30)  # painted without a name (e.g. before this prompt existed): not asked any more
    assert not needs_name(session)
    session.set_active_label(session.add_label().value)  # a fresh "Label 2", but the image has labels
    assert not needs_name(session)


def test_dialog_offers_the_structures_of_the_modality_and_filters(qtbot):
    ct = LabelNameDialog("CT")
    qtbot.addWidget(ct)
    offered = ct.visible_structures()
    for name in ("Liver", "Spleen", "Left kidney", "Right kidney", "Pancreas", "Lung", "Heart", "Aorta", "Bone",
                 "Vertebra", "Bladder", "Tumour", "Lesion"):
        assert name in offered
    assert not ct.buttons.button(ct.buttons.StandardButton.Ok).isEnabled()  # no name yet
    ct.choose("tumor")  # American spelling finds the British
    assert ct.visible_structures() == ["Tumour", "Liver tumour", "Kidney tumour"]
    ct.choose("neoplasm")  # the code's meaning finds it too
    assert "Tumour" in ct.visible_structures()
    ct.choose("Left kidney")
    assert "Kidney (SCT 64033007)" in ct.code.text() and "Left (SCT 7771000)" in ct.code.text()
    ct.choose("my structure")  # free text: allowed, said to be coded as Tissue
    assert ct.visible_structures() == [] and ct.name() == "my structure" and ct.codes() is None
    assert "Tissue" in ct.code.text() and ct.buttons.button(ct.buttons.StandardButton.Ok).isEnabled()
    assert "Brain" in dict(structures("MR")) and "White matter" in dict(structures("MR"))
    assert "Vertebra" not in dict(structures("OT")) and "Tumour" in dict(structures(""))


@pytest.mark.parametrize("modality", ["CT", "MR", ""])
def test_every_offered_structure_has_a_snomed_code(modality):
    for name, found in structures(modality):
        assert found is not None, name
        coding = label_coding(Label(1, name, (0, 0, 0), found))
        assert coding.type.scheme_designator == coding.category.scheme_designator == "SCT", name
        assert coding.type != codes.SCT.Tissue, name


def test_choosing_liver_names_and_codes_the_active_label(window, qtbot, monkeypatch):
    _open_phantom(window, qtbot)
    asked = _answer(monkeypatch, "Liver")
    assert ask_label_name(window, window.session)
    assert [d.visible_structures()[0] for d in asked] == ["Liver"]
    label = window.session.table.get(window.session.active_label)
    assert label.name == "Liver" and label.code("type") == ("SCT", "10200004", "Liver")
    coding = label_coding(label)  # what DICOM-SEG and Slicer exports write
    assert coding.category == codes.SCT.AnatomicalStructure and coding.type == codes.SCT.Liver
    assert label.color == default_color(1)
    assert ask_label_name(window, window.session) and len(asked) == 1  # named: not asked again


def test_a_fresh_label_gets_a_colour_unlike_the_others(window, qtbot, monkeypatch):
    _open_phantom(window, qtbot)
    session = window.session
    session.update_label(session.table.get(1).renamed("Liver"))
    session.update_label(Label(2, "Label 2", default_color(1)))  # the same red as label 1
    session.set_active_label(2)
    _answer(monkeypatch, "Spleen")
    assert ask_label_name(window, session)
    assert session.table.get(2).name == "Spleen" and session.table.get(2).color != default_color(1)


def test_cancel_changes_nothing(window, qtbot, monkeypatch):
    _open_phantom(window, qtbot)
    before = window.session.table
    asked = _answer(monkeypatch, None)
    assert not ask_label_name(window, window.session)
    assert len(asked) == 1 and window.session.table == before and needs_name(window.session)


def test_the_dialog_runs_modally_and_is_answered(window, qtbot, monkeypatch):
    monkeypatch.setattr(label_prompt, "run_dialog", _MODAL)
    _open_phantom(window, qtbot)
    seen: list = []
    _answer_modal("Spleen", seen)
    assert ask_label_name(window, window.session)  # the real exec()
    assert window.session.table.get(1).code("type") == ("SCT", "78961009", "Spleen") and "Liver" in seen[0]


def test_rename_button_opens_the_dialog_for_the_selected_label(window, qtbot, monkeypatch):
    from PySide6.QtCore import Qt

    from unetgui.ui.label_panel import LabelPanel

    monkeypatch.setattr(label_prompt, "run_dialog", _MODAL)
    _open_phantom(window, qtbot)
    panel = window.findChild(LabelPanel)
    panel._on_add_clicked()
    panel.table.selectRow(1)
    colour = window.session.table.get(2).color
    seen: list = []
    _answer_modal("Right kidney", seen)
    qtbot.mouseClick(panel.rename, Qt.MouseButton.LeftButton)
    label = window.session.table.get(2)
    assert label.name == "Right kidney" and label.color == colour and window.session.table.get(1).name == "Label 1"
    assert label_coding(label).type == codes.SCT.Kidney and label_coding(label).modifier == codes.SCT.Right
    assert panel.table.item(1, 1).text() == "Right kidney" and panel.table.item(1, 1).toolTip().startswith("Coded as")
    assert panel.table.item(1, 1).flags() & Qt.ItemFlag.ItemIsEditable  # double-click still renames


# -- the window's rule: which gesture asks, and what it paints --------------------------------------------------

from unetgui.ui.main_window import MainWindow  # noqa: E402

_WINDOW_RULE = MainWindow._name_first_label  # before the autouse fixture replaces it for the other GUI tests


def test_the_first_brush_drag_asks_the_name_and_paints_nothing_the_next_one_paints_it(window, qtbot, monkeypatch):
    from gui_helpers import _drag, _line

    monkeypatch.setattr(MainWindow, "_name_first_label", _WINDOW_RULE)
    asked = _answer(monkeypatch, "Liver")
    _open_phantom(window, qtbot)
    window.actions.brush.trigger()
    _drag(qtbot, window.view, _line(window.view, 30, 20, 40), pace_ms=12)
    s = window.session
    assert len(asked) == 1 and s.table.get(s.active_label).name == "Liver"
    assert not (s.labels.labels == s.active_label).any() and not s.reviewed.any()  # the dialog took that drag
    _drag(qtbot, window.view, _line(window.view, 30, 20, 40), pace_ms=12)
    assert len(asked) == 1 and (s.labels.labels == s.active_label).any()  # asked once; this one paints


def test_a_cancelled_question_paints_nothing_and_the_eraser_never_asks(window, qtbot, monkeypatch):
    from PySide6.QtCore import Qt

    from gui_helpers import _widget_point

    monkeypatch.setattr(MainWindow, "_name_first_label", _WINDOW_RULE)
    asked = _answer(monkeypatch, None)
    _open_phantom(window, qtbot)
    s = window.session
    window.actions.fill.trigger()
    qtbot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=_widget_point(window.view, 30, 40))
    assert len(asked) == 1 and not (s.labels.labels == s.active_label).any() and s.table.get(s.active_label).name == "Label 1"
    window.actions.eraser.trigger()
    qtbot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=_widget_point(window.view, 30, 40))
    assert len(asked) == 1
    asked = _answer(monkeypatch, "Spleen")
    window.actions.brush.trigger()
    qtbot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=_widget_point(window.view, 30, 40))
    assert len(asked) == 1 and s.table.get(s.active_label).name == "Spleen"  # a click paints once answered
    assert (s.labels.labels == s.active_label).any()
