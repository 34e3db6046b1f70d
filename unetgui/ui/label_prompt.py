"""Ask what a label is: the first stroke on an image without labels asks for the structure's name, offering the
common structures of the modality with the SNOMED CT codes that exports (DICOM-SEG, Slicer) will write.

The codes come from :func:`unetgui.formats.dicom_seg.segment_coding`, the one place that decides how a name is
coded; a structure chosen here is stored with its codes on the label (:attr:`Label.codes`), so renaming it by
hand later drops them, as for codes read from a file.

Tests answer the dialog by replacing :func:`run_dialog` (as they replace ``QFileDialog.getOpenFileName``).
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import lru_cache

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog, QDialogButtonBox, QLabel, QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout, QWidget,
)

from unetgui.core.session import Session
from unetgui.core.volume import CODE_ROLES, UNANNOTATED, Label, distinct_color
from unetgui.formats.dicom_seg import TISSUE, segment_coding

Codes = tuple[tuple[str, str, str, str], ...]

# names as offered (each resolves to a SNOMED CT code through segment_coding; tests/ui check it)
_CT = ("Liver", "Spleen", "Left kidney", "Right kidney", "Kidney", "Pancreas", "Left lung", "Right lung", "Lung",
       "Heart", "Aorta", "Bone", "Vertebra", "Rib", "Bladder", "Tumour", "Lesion", "Liver tumour", "Kidney tumour",
       "Lung nodule", "Metastasis", "Cyst", "Stomach", "Gallbladder", "Oesophagus", "Duodenum", "Colon",
       "Small intestine", "Left adrenal gland", "Right adrenal gland", "Inferior vena cava", "Portal vein",
       "Pulmonary artery", "Trachea", "Femur", "Prostate", "Uterus", "Lymph node", "Spinal cord", "Brain",
       "Haemorrhage", "Muscle", "Fat")
_MR = ("Brain", "White matter", "Grey matter", "Cerebrospinal fluid", "Lateral ventricle", "Hippocampus",
       "Thalamus", "Cerebellum", "Brainstem", "Spinal cord", "Brain tumour", "Brain lesion", "Oedema", "Necrosis",
       "Prostate", "Seminal vesicle", "Liver", "Liver tumour", "Kidney", "Spleen", "Pancreas", "Heart",
       "Left ventricle", "Right ventricle", "Uterus", "Ovary", "Bladder", "Rectum", "Breast", "Knee", "Cartilage",
       "Muscle", "Fat", "Tumour", "Lesion", "Cyst")
_GENERAL = ("Tumour", "Lesion", "Nodule", "Cyst", "Mass", "Metastasis", "Liver", "Kidney", "Lung", "Heart",
            "Brain", "Bone", "Muscle", "Fat", "Skin", "Soft tissue", "Cartilage", "Blood vessel", "Artery", "Vein",
            "Lymph node", "Thyroid", "Breast", "Eye")
_DEFAULT_NAME = re.compile(r"Label \d+")


def structures(modality: str) -> list[tuple[str, Codes | None]]:
    """The structures offered for images of ``modality`` (DICOM's "CT", "MR"; anything else gets a general
    list), each with the codes a label of that name gets (None: no code fits, exports write Tissue)."""
    key = modality.strip().upper()
    names = _CT if key == "CT" else _MR if key in ("MR", "MRI") else _GENERAL
    return [(name, codes_for(name)) for name in names]


@lru_cache(maxsize=512)
def codes_for(name: str) -> Codes | None:
    """:attr:`Label.codes` for a label called ``name`` (by :func:`segment_coding`); None when nothing fits."""
    coding = segment_coding(name)
    if coding == TISSUE:
        return None
    found = ((role, getattr(coding, role)) for role in CODE_ROLES)
    return tuple((role, c.scheme_designator, c.value, c.meaning) for role, c in found if c is not None)


def needs_name(session: Session) -> bool:
    """True when a stroke should first ask what the label is: a document is open, the active label still has
    its generated name ("Label N") and no voxel carries any label yet."""
    label = session.table.get(session.active_label) if session.is_open else None
    if label is None or not _DEFAULT_NAME.fullmatch(label.name):
        return False
    labels = session.labels.labels
    for start in range(0, labels.shape[0], 16):  # in slabs: stops at the first labelled one
        slab = labels[start:start + 16]
        if ((slab > 0) & (slab < UNANNOTATED)).any():
            return False
    return True


def named(label: Label, name: str, codes: Codes | None) -> Label:
    """``label`` called ``name`` with ``codes`` (none: exports code it by its name). The same name keeps the
    codes it has (those of a file it came from stay)."""
    name = name.strip()
    if name == label.name and label.codes:
        return label
    return replace(label, name=name, codes=codes or ())


class LabelNameDialog(QDialog):
    """Choose what a label is: type to filter the structures of the modality, pick one, or type any name.
    Below the list it says how exports will code the name."""

    def __init__(self, modality: str, name: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Name the label")
        self._offered = dict(structures(modality))
        self.edit = QLineEdit(name, placeholderText="Structure, e.g. liver (type to filter)")
        self.edit.setClearButtonEnabled(True)
        self.list = QListWidget()
        for structure, codes in self._offered.items():
            item = QListWidgetItem(structure)
            item.setToolTip(_coded(structure, codes))
            self.list.addItem(item)
        self.code = QLabel(wordWrap=True)
        self.code.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        kind = {"CT": "CT images", "MR": "MR images", "MRI": "MR images"}.get(modality.strip().upper(), "images")
        layout.addWidget(QLabel(f"What does this label mark? Pick a structure common in {kind} or type any name:"))
        layout.addWidget(self.edit)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.code)
        layout.addWidget(self.buttons)
        self.edit.textEdited.connect(self._on_text_edited)
        self.edit.textChanged.connect(self._on_text_changed)
        self.list.currentItemChanged.connect(self._on_item_chosen)
        self.list.itemClicked.connect(self._on_item_chosen)  # also the item already current
        self.list.itemDoubleClicked.connect(lambda _item: self.accept())
        self._on_text_changed(name)
        self.edit.selectAll()

    def name(self) -> str:
        return self.edit.text().strip()

    def codes(self) -> Codes | None:
        """The codes of the chosen name: the offered structure's, else those the name resolves to."""
        name = self.name()
        return self._offered.get(name) or (codes_for(name) if name else None)

    def choose(self, name: str) -> None:
        """Set the name as if typed (filters the list)."""
        self.edit.setText(name)
        self._on_text_edited(name)

    def visible_structures(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count()) if not self.list.item(i).isHidden()]

    def _on_text_edited(self, text: str) -> None:
        wanted = _fold(text.strip())
        for i in range(self.list.count()):
            item = self.list.item(i)
            codes = self._offered[item.text()]
            meaning = codes[1][3] if codes else ""  # the type's meaning: "neoplasm" finds "Tumour"
            item.setHidden(bool(wanted) and wanted not in _fold(item.text()) and wanted not in _fold(meaning))

    def _on_text_changed(self, text: str) -> None:
        name = text.strip()
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(bool(name))
        self.code.setText(_coded(name, self.codes()) if name else "")

    def _on_item_chosen(self, item: QListWidgetItem | None) -> None:
        if item is not None and (self.list.hasFocus() or item.isSelected()):  # not when filtering moved it
            self.edit.setText(item.text())


def _coded(name: str, codes: Codes | None) -> str:
    if not codes:
        return f"No code fits \"{name}\": exports write it as Tissue (SCT 85756007)."
    return "Exports code it as " + Label(1, name, (0, 0, 0), codes).coded_as(numbers=True) + "."


def _fold(text: str) -> str:
    """Lowercase with British and American spellings made alike ("tumour", "tumor"; "oedema", "edema")."""
    return text.lower().replace("ou", "o").replace("ae", "e").replace("oe", "e")


def run_dialog(dialog: LabelNameDialog) -> bool:
    """Show ``dialog`` modally; True when accepted. The one seam tests replace to answer it."""
    return dialog.exec() == QDialog.DialogCode.Accepted


def ask_label_name(parent: QWidget | None, session: Session) -> bool:
    """Before a stroke: when :func:`needs_name`, ask what the active label is. OK names it (with the codes of
    the structure and a palette colour unlike the other labels') and returns True; Cancel changes nothing and
    returns False (then do not paint). Without a question, True at once."""
    if not needs_name(session):
        return True
    label = session.table.get(session.active_label)
    dialog = LabelNameDialog(session.volume.modality, parent=parent)
    try:
        if not run_dialog(dialog) or not dialog.name():
            return False
        colour = distinct_color(lab.color for lab in session.table if lab.value != label.value)
        session.update_label(replace(named(label, dialog.name(), dialog.codes()), color=colour))
        return True
    finally:
        dialog.deleteLater()


def rename_label(parent: QWidget | None, session: Session, value: int) -> bool:
    """Ask a new name for label ``value`` (its current name filled in); True when it was renamed. Its colour
    stays."""
    label = session.table.get(value)
    if label is None or not session.is_open:
        return False
    dialog = LabelNameDialog(session.volume.modality, label.name, parent=parent)
    try:
        if not run_dialog(dialog) or not dialog.name():
            return False
        session.update_label(named(label, dialog.name(), dialog.codes()))
        return True
    finally:
        dialog.deleteLater()
