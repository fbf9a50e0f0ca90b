import XCTest
@testable import Distributed

final class DistributedPlaceholderTests: XCTestCase {
    func testModuleLinks() { XCTAssertTrue(true) }
}
