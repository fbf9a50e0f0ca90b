import TensorCore
import XCTest

/// The BLAS kernel choice is a pure function of (CPU features, reported core, user
/// setting, re-exec marker); these cases pin it.
final class BLASKernelTests: XCTestCase {
    let emeraldRapids = BLASKernel.CPUFeatures(flags: ["sse2", "pni", "avx", "avx2", "fma", "avx512f", "avx512bw",
                                                       "avx512vl", "avx512dq", "avx512_bf16"])
    let haswellCPU = BLASKernel.CPUFeatures(flags: ["sse2", "pni", "avx", "avx2", "fma"])

    func testPrescottOnAVX512ReexecutesWithSkylakeX() {
        let d = BLASKernel.decide(cpu: emeraldRapids, reportedCore: "Prescott", userSetting: nil, alreadyReexecuted: false)
        guard case let .reexecute(core, reason) = d else { return XCTFail("expected re-exec, got \(d)") }
        XCTAssertEqual(core, "SkylakeX")
        XCTAssertTrue(reason.contains("Prescott"), reason)
    }

    func testPrescottOnAVX2ReexecutesWithHaswell() {
        let d = BLASKernel.decide(cpu: haswellCPU, reportedCore: "Prescott", userSetting: nil, alreadyReexecuted: false)
        XCTAssertEqual(d, .reexecute(coreType: "Haswell", reason: "OpenBLAS chose Prescott (SSE3) on a CPU with AVX2"))
    }

    func testHaswellOnAVX512IsUpgraded() {
        let d = BLASKernel.decide(cpu: emeraldRapids, reportedCore: "Haswell", userSetting: nil, alreadyReexecuted: false)
        guard case .reexecute(coreType: "SkylakeX", _) = d else { return XCTFail("\(d)") }
    }

    func testUserSettingIsRespectedEvenIfWeaker() {
        for setting in ["Haswell", "Prescott", ""] {
            let d = BLASKernel.decide(cpu: emeraldRapids, reportedCore: "Prescott", userSetting: setting,
                                      alreadyReexecuted: false)
            guard case let .keep(reason) = d else { return XCTFail("\(d)") }
            XCTAssertTrue(reason.contains("OPENBLAS_CORETYPE=\(setting)"), reason)
        }
    }

    func testNeverReexecutesTwice() {
        let d = BLASKernel.decide(cpu: emeraldRapids, reportedCore: "Prescott", userSetting: nil, alreadyReexecuted: true)
        guard case .keep = d else { return XCTFail("\(d)") }
    }

    func testMatchingOrStrongerCoreIsKept() {
        for core in ["SkylakeX", "Cooperlake", "SapphireRapids", "skylakex"] {
            guard case .keep = BLASKernel.decide(cpu: emeraldRapids, reportedCore: core, userSetting: nil,
                                                 alreadyReexecuted: false) else { return XCTFail(core) }
        }
        guard case .keep = BLASKernel.decide(cpu: haswellCPU, reportedCore: "Zen", userSetting: nil,
                                             alreadyReexecuted: false) else { return XCTFail("Zen") }
    }

    func testUnknownCoreOrCPUIsLeftAlone() {
        guard case .keep = BLASKernel.decide(cpu: emeraldRapids, reportedCore: "ARMV8", userSetting: nil,
                                             alreadyReexecuted: false) else { return XCTFail() }
        guard case .keep = BLASKernel.decide(cpu: .init(flags: []), reportedCore: "Prescott", userSetting: nil,
                                             alreadyReexecuted: false) else { return XCTFail() }
    }

    func testTiersFromFlags() {
        XCTAssertEqual(emeraldRapids.bestTier, .avx512)
        XCTAssertEqual(haswellCPU.bestTier, .avx2)
        // AVX-512F alone (no BW/VL/DQ, e.g. Knights Landing) is not enough for SkylakeX kernels.
        XCTAssertEqual(BLASKernel.CPUFeatures(flags: ["avx", "avx2", "fma", "avx512f"]).bestTier, .avx2)
        XCTAssertEqual(BLASKernel.CPUFeatures(flags: ["sse2", "pni"]).bestTier, .sse3)
        XCTAssertNil(BLASKernel.CPUFeatures(flags: ["neon", "asimd"]).bestTier)
    }

    func testCurrentProcessReportsACoreName() {
        XCTAssertFalse(BLASKernel.coreName.isEmpty)
        XCTAssertTrue(BLASKernel.config.hasPrefix("OpenBLAS"), BLASKernel.config)
        XCTAssertTrue(BLASKernel.statusLine().contains(BLASKernel.coreName))
    }
}
