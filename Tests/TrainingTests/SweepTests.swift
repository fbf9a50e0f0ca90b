import OODDetection
@testable import Training
import XCTest

/// Sweep plans (cells, labels, controls, the per-cell config), xi targets, the sweep keys of the
/// config, selection by validation and reading ood.json back.
final class SweepTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("sweep-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func load(_ yaml: String, _ overrides: [String] = []) throws -> RunConfig {
        let p = dir.appendingPathComponent("c.yaml").path
        try yaml.write(toFile: p, atomically: true, encoding: .utf8)
        return try RunConfig.load(file: p, overrides: overrides).config
    }

    func testXiIsANumberOrAListAndRoundTripsAsWritten() throws {
        XCTAssertEqual(try load("um:\n  xi: 0.15\n").um.xi, [0.15])
        XCTAssertEqual(try load("um:\n  xi: [0, 0.1]\n").um.xi, [0, 0.1])
        XCTAssertEqual(try load("name: x\n", ["um.xi=[]", "um.xi_positions=[0.1,0.25]"]).um.xiPositions, [0.1, 0.25])
        let text = try RunConfig().yaml()
        XCTAssertTrue(text.contains("xi: 0"), "one value is written as a number, as configs write it: \(text)")
        var c = RunConfig()
        c.um.xi = [0, 0.2]
        let back = try load(try c.yaml())
        XCTAssertEqual(back.um.xi, [0, 0.2])
    }

    func testSweepKeysAreValidatedNamingTheKey() throws {
        func refused(_ overrides: [String], _ key: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try load("name: x\n", overrides), "\(overrides)", file: file, line: line) { e in
                XCTAssertTrue("\(e)".contains("'\(key)"), "\(e)", file: file, line: line)
            }
        }
        refused(["um.xi_positions=[0.1,1.0]"], "um.xi_positions[1]")
        refused(["um.xi_positions=[0]"], "um.xi_positions[0]")
        refused(["um.xi=[-1]"], "um.xi[0]")
        refused(["um.xi=[]"], "um.xi")
        refused(["um.xi_positions=[0.1,0.1]"], "um.xi_positions")
        refused(["finetune.schedules=[{name: a}, {name: a}]"], "finetune.schedules[1].name")
        refused(["finetune.schedules=[{name: 'a-b'}]"], "finetune.schedules[0].name")
        refused(["finetune.schedules=[{epochs: 3}]"], "finetune.schedules[0].name")
        refused(["finetune.schedules=[{name: r, restart: true, epochs: 3}]"], "finetune.schedules[0]")
        refused(["finetune.schedules=[{name: a, lr: -1}]"], "finetune.schedules[0].lr")
    }

    func testPlanWithoutASweepIsTheClassicThreeModels() {
        let plan = SweepPlan(config: RunConfig())
        XCTAssertFalse(plan.isSweep)
        XCTAssertEqual(plan.cells.map(\.label), ["um", "umap", "ce_finetune"])
        XCTAssertEqual(plan.control(of: plan.cells[0])?.label, "ce_finetune")
        XCTAssertEqual(SweepPlan(config: RunConfig(), includeUMAP: false).cells.map(\.label), ["um", "ce_finetune"])
    }

    func testSweepCellsLabelsAndControls() throws {
        let c = try load("name: x\n", ["um.xi=[0, 0.2]", "um.xi_positions=[0.1]",
                                       "finetune.schedules=[{name: short, epochs: 6}, {name: restart, restart: true}]"])
        let plan = SweepPlan(config: c)
        XCTAssertTrue(plan.isSweep)
        XCTAssertEqual(plan.targets, [.estimate, .nats(0.2), .position(0.1)])
        XCTAssertEqual(plan.cells.map(\.label), [
            "ce-short", "um-short-est", "umap-short-est", "um-short-xi0.2", "umap-short-xi0.2", "um-short-p0.1", "umap-short-p0.1",
            "ce-restart", "um-restart-est", "umap-restart-est", "um-restart-xi0.2", "umap-restart-xi0.2", "um-restart-p0.1",
            "umap-restart-p0.1",
        ])
        for cell in plan.cells where !cell.isControl {
            XCTAssertEqual(plan.control(of: cell)?.label, "ce-\(cell.schedule.name)")
            XCTAssertEqual(SweepPlan.controlLabel(of: cell.label), "ce-\(cell.schedule.name)")
        }
        XCTAssertEqual(SweepPlan.controlLabel(of: "um"), "ce_finetune")
        XCTAssertNil(SweepPlan.controlLabel(of: "ce-short"))
        XCTAssertNil(SweepPlan.method(ofLabel: "best_val_epoch"))
        XCTAssertEqual(SweepPlan.method(ofLabel: "umap-restart-p0.1"), .umap)
    }

    func testCellConfigIsTheSameInsideASweepAndAlone() throws {
        let sweep = try load("name: x\n", ["um.xi=[]", "um.xi_positions=[0.1, 0.3]", "train.epochs=30", "train.lr=0.1",
                                           "finetune.schedules=[{name: a, epochs: 2, lr: 0.02}, {name: restart, restart: true}]"])
        let alone = try load("name: x\n", ["um.xi=[]", "um.xi_positions=[0.3]", "train.epochs=30", "train.lr=0.1",
                                           "finetune.schedules=[{name: restart, restart: true}]"])
        let inSweep = SweepPlan(config: sweep).cells.first { $0.label == "um-restart-p0.3" }!
        let single = SweepPlan(config: alone).cells.first { $0.label == "um-restart-p0.3" }!
        let a = SweepPlan.cellConfig(sweep, cell: inSweep, xi: 0.123), b = SweepPlan.cellConfig(alone, cell: single, xi: 0.123)
        XCTAssertEqual(try a.yaml(), try b.yaml(), "the cell's config must not depend on the rest of the sweep")
        XCTAssertEqual(StageRecord.checksum(config: a), StageRecord.checksum(config: b))
        XCTAssertEqual(a.finetune.epochs, 30, "restart re-runs the training schedule")
        XCTAssertEqual(a.finetune.lr, 0.1)
        XCTAssertEqual(a.um.xi, [0.123])
        XCTAssertTrue(a.um.xiPositions.isEmpty)
        // Training and the estimate are recorded without the fine-tuning keys: a sweep that gains
        // a cell reuses them.
        XCTAssertEqual(StageRecord.checksum(config: SweepPlan.trainingConfig(sweep)),
                       StageRecord.checksum(config: SweepPlan.trainingConfig(alone)))
        var other = sweep
        other.train.epochs = 31
        XCTAssertNotEqual(StageRecord.checksum(config: SweepPlan.trainingConfig(sweep)),
                          StageRecord.checksum(config: SweepPlan.trainingConfig(other)))
    }

    func testXiPositionResolvesBetweenTheTrainingAndHeldOutLoss() throws {
        let e = EstimateReport(xi: 0.05, keepRatio: 0.99, maskSeed: 0, rule: "flip", count: 10, atypicalCount: 1, atypicalPerClass: [1],
                               trainLoss: 0.03, trainAccuracy: 1, heldoutLoss: 0.33, heldoutCount: 5, calibrated: true,
                               calibrationNote: "", ratios: [], maskChecksum: "", worldSize: 1)
        XCTAssertEqual(try XiTarget.position(0.1).resolve(e), 0.03 + 0.1 * 0.30, accuracy: 1e-15)  // 0.06 nats
        XCTAssertEqual(try XiTarget.position(0.5).resolve(e), 0.18, accuracy: 1e-15)
        XCTAssertEqual(try XiTarget.estimate.resolve(e), 0.05)
        XCTAssertEqual(try XiTarget.nats(0.2).resolve(nil), 0.2)
        XCTAssertThrowsError(try XiTarget.position(0.1).resolve(nil))
        var noHeld = e
        noHeld.heldoutLoss = .nan
        XCTAssertThrowsError(try XiTarget.position(0.1).resolve(noHeld)) { XCTAssertTrue("\($0)".contains("um.xi_positions"), "\($0)") }
    }

    func testSelectionTakesTheDefaultCellAndTheBestValidationCell() throws {
        let c = try load("name: x\n", ["um.xi=[0]", "um.xi_positions=[0.1, 0.3]",
                                       "finetune.schedules=[{name: a, epochs: 1}, {name: b, epochs: 2}]"])
        let plan = SweepPlan(config: c)
        func record(_ label: String, _ auroc: Double) -> ValidationRecord {
            ValidationRecord(label: label, xi: 0.1, score: "energy", auroc: ["energy": auroc], fpr95: ["energy": 0.5], heldOutLoss: 0.3,
                             heldOutAccuracy: 0.9, sets: ["v"], weightsChecksum: "")
        }
        var v: [String: ValidationRecord] = [:]
        for (i, cell) in plan.cells.enumerated() { v[cell.label] = record(cell.label, 0.5 + 0.01 * Double(i % 5)) }
        v["um-b-p0.1"] = record("um-b-p0.1", 0.9)
        v["umap-a-p0.3"] = record("umap-a-p0.3", .nan)  // a NaN is never picked
        v["umap-b-est"] = record("umap-b-est", 0.8)
        v["umap-b-p0.3"] = record("umap-b-p0.3", 0.8)
        let s = Selection.make(plan: plan, validation: v, score: "energy")
        let picks = Dictionary(uniqueKeysWithValues: s.picks.map { ("\($0.method)/\($0.rule)", $0) })
        XCTAssertEqual(picks["um/default"]?.label, "um-a-est")
        XCTAssertEqual(picks["umap/default"]?.label, "umap-a-est")
        XCTAssertEqual(picks["um/validation"]?.label, "um-b-p0.1")
        XCTAssertEqual(picks["um/validation"]?.control, "ce-b")
        XCTAssertEqual(picks["um/validation"]?.validationAUROC, 0.9)
        XCTAssertEqual(picks["umap/validation"]?.label, "umap-b-est", "0.8, tied with umap-b-p0.3: the first in plan order wins")
        // selection.json round-trips.
        let path = dir.appendingPathComponent("selection.json").path
        try s.write(to: path)
        XCTAssertEqual(try Selection.read(path).picks, s.picks)
    }

    func testOODReportReadsBackWhatEvaluateWrote() throws {
        let m = OODMetrics(auroc: 0.81, auprIn: 0.7, auprOut: 0.6, fpr95: 0.45, nID: 100, nOOD: 50, fprMode: .strict)
        let ci = MetricIntervals(auroc: .init(lower: 0.8, upper: 0.82), auprIn: .init(lower: 0.69, upper: 0.71),
                                 auprOut: .init(lower: 0.59, upper: 0.61), fpr95: .init(lower: 0.4, upper: 0.5))
        let ids: [Int64] = [0, 1]
        var r = OODReport(idAccuracy: 0.875, idLoss: 0.3, rows: [OODRow(score: .energy, set: "mnist", synthetic: false, metrics: m, intervals: ci),
                                                                OODRow(score: .msp, set: "noise", synthetic: true, metrics: m, intervals: nil)],
                          fprMode: .strict, averages: [.energy: m], scoreOrder: [.energy, .msp],
                          idScores: SetScores(ids: ids, scores: [.energy: [1, 2], .msp: [0, 0]]),
                          oodScores: ["mnist": SetScores(ids: ids, scores: [.energy: [0, 1], .msp: [0, 0]]),
                                      "noise": SetScores(ids: ids, scores: [.energy: [0, 1], .msp: [0, 0]])],
                          fitted: OODEvaluation.Fitted(), settings: EvaluateSection(), tuning: nil)
        r.averageIntervals = [.energy: ci]
        r.bootstrapReplicates = 2000
        r.cost.add("forward", 1.5)
        try OODEvaluation.write(r, to: dir.path, title: "t")
        let back = try OODReport.read(dir.path + "/ood.json")
        XCTAssertEqual(back.idAccuracy, 0.875)
        XCTAssertEqual(back.scoreOrder, [.energy, .msp])
        XCTAssertEqual(back.rows.map(\.set), ["mnist", "noise"])
        XCTAssertEqual(back.rows[0].metrics.auroc, 0.81)
        XCTAssertEqual(back.rows[0].intervals, ci)
        XCTAssertTrue(back.rows[1].synthetic)
        XCTAssertNil(back.rows[1].intervals)
        XCTAssertEqual(back.averages[.energy]?.fpr95, 0.45)
        XCTAssertEqual(back.averageIntervals[.energy], ci)
        XCTAssertEqual(back.bootstrapReplicates, 2000)
        XCTAssertEqual(back.cost.seconds["forward"], 1.5)
        XCTAssertThrowsError(try OODReport.read(dir.path + "/missing.json")) { XCTAssertTrue("\($0)".contains("missing.json"), "\($0)") }
    }

    func testAStageRecordedBeforeAKeyWasAddedIsStillReusable() throws {
        var c = RunConfig()
        c.outputDir = dir.path
        c.name = "r"
        let folder = RunFolder(config: c, stage: "train")
        try folder.create()
        try c.yaml().write(toFile: folder.root + "/config.yaml", atomically: true, encoding: .utf8)
        try Data("w".utf8).write(to: URL(fileURLWithPath: folder.root + "/model.safetensors"))
        var record = StageRecord(stage: "train", inputWeights: nil, config: SweepPlan.trainingConfig(c), outputs: ["model.safetensors"])
        record.configChecksum = "0123456789abcdef"  // as an older build (other key set) would have written it
        try record.write(to: folder)
        XCTAssertTrue(StageRecord.isComplete(folder, inputWeights: nil, config: SweepPlan.trainingConfig(c), project: SweepPlan.trainingConfig),
                      "the stage's config.yaml, read with today's keys, is the same config")
        var other = c
        other.train.epochs += 1
        XCTAssertFalse(StageRecord.isComplete(folder, inputWeights: nil, config: SweepPlan.trainingConfig(other), project: SweepPlan.trainingConfig))
        var sweep = c
        sweep.um.xiPositions = [0.1]
        XCTAssertTrue(StageRecord.isComplete(folder, inputWeights: nil, config: SweepPlan.trainingConfig(sweep), project: SweepPlan.trainingConfig),
                      "fine-tuning keys do not invalidate training")
        // A later attempt with another config wrote its config.yaml and died before finishing:
        // the old record and weights must not pass for that config.
        try other.yaml().write(toFile: folder.root + "/config.yaml", atomically: true, encoding: .utf8)
        XCTAssertFalse(StageRecord.isComplete(folder, inputWeights: nil, config: SweepPlan.trainingConfig(other), project: SweepPlan.trainingConfig),
                       "config.yaml is not the one the record was written beside")
    }

    func testHeadlineNamesSignificantChangesInPlainWords() {
        func report(_ acc: Double, _ auroc: Double, _ fpr: Double) -> OODReport {
            let m = OODMetrics(auroc: auroc, auprIn: 0.5, auprOut: 0.5, fpr95: fpr, nID: 10, nOOD: 10, fprMode: .strict)
            return OODReport(idAccuracy: acc, idLoss: 0, rows: [], fprMode: .strict, averages: [.energy: m], scoreOrder: [.energy],
                             idScores: SetScores(ids: [], scores: [:]), oodScores: [:], fitted: OODEvaluation.Fitted(),
                             settings: EvaluateSection(), tuning: nil)
        }
        // UM: AUROC +2, +3, +4 points against the baseline (significant), against the control +1, -1, 0 (not).
        let runs = [(0.70, 0.72, 0.71), (0.60, 0.63, 0.64), (0.65, 0.69, 0.69)].enumerated().map { i, v in
            Comparison.Run(name: "s\(i)", reports: [("baseline", report(0.9, v.0, 0.5)), ("um", report(0.89, v.1, 0.5)),
                                                    ("ce_finetune", report(0.9, v.2, 0.5))])
        }
        let text = Comparison.headline(runs: runs, methods: [("um", "ce_finetune")], kinds: [.energy])
        XCTAssertTrue(text.contains("AUROC +3.00 [+0.52, +5.48], 3/3 seeds better, **significant**"), text)
        XCTAssertTrue(text.contains("AUROC +0.00 [-2.48, +2.48], 1/3 seeds better and"), text)
        XCTAssertTrue(text.contains("**Significantly better** (the 95% interval over seeds excludes zero): UM energy (AUROC against the trained model). "
                                    + "**Significantly worse:** none."), text)
        // The verdict comes before the details.
        XCTAssertLessThan(text.range(of: "Significantly better")!.lowerBound, text.range(of: "changed ID accuracy")!.lowerBound, text)
        XCTAssertTrue(text.contains("changed ID accuracy by -1.00 points"), text)
        // Multiplicity: 1 method x 1 score x (AUROC, FPR95) x (trained model, control) = 4 tests, 1 significant.
        XCTAssertTrue(text.contains("These are 4 paired tests at the 95% level, each on its own: with no real effect anywhere about 0.2 "
                                    + "of them would come out significant by chance alone (here 1 did)"), text)
    }

    /// The opening leads with the verdict: a score the method improves is named under "better"
    /// and listed first in the details, a score it harms under "worse". Energy: UM 3, 4, 5 points
    /// below the baseline (mean -4, sd 1, half-width t(2) 4.303 / sqrt 3 = 2.48: [-6.48, -1.52]);
    /// Mahalanobis: 2, 3, 4 above ([+0.52, +5.48]).
    func testHeadlineLeadsWithTheScoresTheMethodImproves() {
        func report(_ energy: Double, _ maha: Double) -> OODReport {
            func m(_ a: Double) -> OODMetrics { OODMetrics(auroc: a, auprIn: 0.5, auprOut: 0.5, fpr95: 0.5, nID: 10, nOOD: 10, fprMode: .strict) }
            return OODReport(idAccuracy: 0.9, idLoss: 0, rows: [], fprMode: .strict, averages: [.energy: m(energy), .mahalanobis: m(maha)],
                             scoreOrder: [.energy, .mahalanobis], idScores: SetScores(ids: [], scores: [:]), oodScores: [:],
                             fitted: OODEvaluation.Fitted(), settings: EvaluateSection(), tuning: nil)
        }
        let runs = (0..<3).map { i -> Comparison.Run in
            let d = Double(i) / 100
            return Comparison.Run(name: "s\(i)", reports: [("baseline", report(0.80, 0.90)), ("um", report(0.77 - d, 0.92 + d)),
                                                         ("ce_finetune", report(0.80, 0.90))])
        }
        let text = Comparison.headline(runs: runs, methods: [("um", "ce_finetune")], kinds: [.energy, .mahalanobis])
        XCTAssertTrue(text.contains("**Significantly better** (the 95% interval over seeds excludes zero): UM mahalanobis (AUROC against the trained model, "
                                    + "AUROC against the CE control)."), text)
        XCTAssertTrue(text.contains("**Significantly worse:** UM energy (AUROC against the trained model, AUROC against the CE control)."), text)
        XCTAssertTrue(text.contains("AUROC +3.00 [+0.52, +5.48], 3/3 seeds better, **significant**"), text)
        XCTAssertTrue(text.contains("AUROC -4.00 [-6.48, -1.52], 0/3 seeds better, **significant**"), text)
        let maha = text.range(of: "- mahalanobis:")!, energy = text.range(of: "- energy:")!
        XCTAssertLessThan(maha.lowerBound, energy.lowerBound, "the improved score is listed first")
        XCTAssertTrue(text.contains("These are 8 paired tests at the 95% level") && text.contains("(here 4 did)"), text)
    }

    /// The detector table: per model, the mean over seeds with its t-interval, the best in bold,
    /// and the best detector against the runner-up paired by seed.
    func testDetectorTableMarksTheBestDetectorPerModel() {
        func report(_ energy: Double, _ knn: Double) -> OODReport {
            func m(_ a: Double) -> OODMetrics { OODMetrics(auroc: a, auprIn: 0.5, auprOut: 0.5, fpr95: 1 - a, nID: 10, nOOD: 10, fprMode: .strict) }
            return OODReport(idAccuracy: 0.9, idLoss: 0, rows: [], fprMode: .strict, averages: [.energy: m(energy), .knn: m(knn)],
                             scoreOrder: [.energy, .knn], idScores: SetScores(ids: [], scores: [:]), oodScores: [:],
                             fitted: OODEvaluation.Fitted(), settings: EvaluateSection(), tuning: nil)
        }
        // Baseline: KNN beats Energy on every seed (0.90/0.92/0.94 vs 0.70/0.71/0.72); UM: Energy
        // 0.95/0.96/0.97 beats KNN 0.93/0.93/0.93.
        let runs = (0..<3).map { i in
            Comparison.Run(name: "s\(i)", reports: [("baseline", report(0.70 + 0.01 * Double(i), 0.90 + 0.02 * Double(i))),
                                                    ("um", report(0.95 + 0.01 * Double(i), 0.93))])
        }
        let text = Comparison.detectorTable(runs: runs)
        XCTAssertTrue(text.contains("| knn | **92.00 [87.03, 96.97]** | 93.00 [93.00, 93.00] |"), text)
        XCTAssertTrue(text.contains("| energy | 71.00 [68.52, 73.48] | **96.00 [93.52, 98.48]** |"), text)
        XCTAssertTrue(text.contains("- baseline: knn - energy +21.00 [+18.52, +23.48], 3/3 better **significant**"), text)
        XCTAssertTrue(text.contains("- um: energy - knn +3.00 [+0.52, +5.48], 3/3 better **significant**"), text)
        XCTAssertTrue(text.contains("**um + energy** (96.00)"), text)
        XCTAssertTrue(text.contains("| FPR95 | baseline | um |"), text)
    }
}
