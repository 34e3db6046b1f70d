"""Archives over the network (no Qt, no torch): DICOM networking (DIMSE, pynetdicom) and DICOMweb
(dicomweb-client) to a PACS or a research archive; the archive nodes the app and the command line share."""
