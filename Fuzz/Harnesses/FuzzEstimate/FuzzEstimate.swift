import FuzzSupport
import Training

/// The estimate stage's artefacts as `finetune` reads them: `estimate.json` (`EstimateReport`,
/// then its calibration table) and `atypical.csv` (`AtypicalTable`), both from the input.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEstimate(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = FuzzInput.bytes(data, size)
    let json = FuzzInput.write(bytes, name: "estimate.json")
    if let report = try? EstimateReport.read(json) {
        precondition(report.xi.isFinite && report.xi >= 0, "accepted xi \(report.xi)")
        _ = EstimateArtifacts.calibrationTable(report)
    }
    let csv = FuzzInput.write(bytes, name: "atypical.csv")
    if let table = try? AtypicalTable.read(csv) {
        let n = table.ids.count
        precondition([table.labels.count, table.loss.count, table.maskedLoss.count, table.predicted.count,
                      table.maskedPredicted.count, table.atypical.count].allSatisfy { $0 == n }, "ragged table")
        _ = table.atypicalIDs
    }
    return 0
}
